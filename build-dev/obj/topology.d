build-dev/obj/topology.o: libpqroute/topology.c libpqroute/topology.h \
 libpqroute/settings.h libpqroute/libpqroute.h \
 /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h libpqroute/log.h
libpqroute/topology.h:
libpqroute/settings.h:
libpqroute/libpqroute.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
libpqroute/log.h:
