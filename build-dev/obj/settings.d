build-dev/obj/settings.o: libpqroute/settings.c libpqroute/settings.h \
 libpqroute/libpqroute.h /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h libpqroute/log.h \
 libpqroute/shim_api.h
libpqroute/settings.h:
libpqroute/libpqroute.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
libpqroute/log.h:
libpqroute/shim_api.h:
