build-dev/obj/shim-shim.o: shim/shim.c libpqroute/shim_api.h \
 /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h libpqroute/libpqroute.h \
 shim/shim.h
libpqroute/shim_api.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
libpqroute/libpqroute.h:
shim/shim.h:
