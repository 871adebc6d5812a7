build-dev/obj/shim-intercept.o: shim/intercept.c shim/shim.h
shim/shim.h:
