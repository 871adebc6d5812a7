build-dev/obj/api.o: libpqroute/api.c libpqroute/log.h \
 libpqroute/patroni.h libpqroute/topology.h libpqroute/settings.h \
 libpqroute/libpqroute.h /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h libpqroute/plan.h \
 libpqroute/rewrite.h libpqroute/policy.h libpqroute/shim_api.h \
 libpqroute/view.h libpqroute/hostcache.h
libpqroute/log.h:
libpqroute/patroni.h:
libpqroute/topology.h:
libpqroute/settings.h:
libpqroute/libpqroute.h:
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
libpqroute/plan.h:
libpqroute/rewrite.h:
libpqroute/policy.h:
libpqroute/shim_api.h:
libpqroute/view.h:
libpqroute/hostcache.h:
