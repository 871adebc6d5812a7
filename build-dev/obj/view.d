build-dev/obj/view.o: libpqroute/view.c libpqroute/view.h \
 libpqroute/hostcache.h libpqroute/policy.h libpqroute/topology.h \
 libpqroute/settings.h libpqroute/libpqroute.h \
 /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h libpqroute/log.h \
 libpqroute/patroni.h libpqroute/resolve.h
libpqroute/view.h:
libpqroute/hostcache.h:
libpqroute/policy.h:
libpqroute/topology.h:
libpqroute/settings.h:
libpqroute/libpqroute.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
libpqroute/log.h:
libpqroute/patroni.h:
libpqroute/resolve.h:
