build-dev/obj/patroni.o: libpqroute/patroni.c libpqroute/patroni.h \
 libpqroute/topology.h libpqroute/settings.h libpqroute/libpqroute.h \
 /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h libpqroute/log.h \
 libpqroute/resolve.h
libpqroute/patroni.h:
libpqroute/topology.h:
libpqroute/settings.h:
libpqroute/libpqroute.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
libpqroute/log.h:
libpqroute/resolve.h:
