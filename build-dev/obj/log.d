build-dev/obj/log.o: libpqroute/log.c libpqroute/log.h
libpqroute/log.h:
