build-dev/obj/hostcache.o: libpqroute/hostcache.c libpqroute/hostcache.h \
 libpqroute/policy.h libpqroute/topology.h libpqroute/settings.h \
 libpqroute/libpqroute.h /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h libpqroute/log.h
libpqroute/hostcache.h:
libpqroute/policy.h:
libpqroute/topology.h:
libpqroute/settings.h:
libpqroute/libpqroute.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
libpqroute/log.h:
