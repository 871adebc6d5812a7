# libpqroute — see README.md. User CFLAGS are respected; project flags are added on top.
HDR := libpqroute/libpqroute.h
MAJOR := $(shell sed -n 's/^\#define PQR_VERSION_MAJOR //p' $(HDR))
MINOR := $(shell sed -n 's/^\#define PQR_VERSION_MINOR //p' $(HDR))
PATCH := $(shell sed -n 's/^\#define PQR_VERSION_PATCH //p' $(HDR))
SONAME := $(shell sed -n 's/^\#define PQR_SONAME //p' $(HDR))
VERSION := $(MAJOR).$(MINOR).$(PATCH)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CC ?= cc
CFLAGS ?= -O2 -g
DEPS := libpq libcurl jansson libconfig
WARN := -Wall -Wextra -Wstrict-prototypes -Wwrite-strings -Wshadow -Wpointer-arith \
        -Wmissing-prototypes -Wno-missing-field-initializers
ifeq ($(WERROR),1)
WARN += -Werror
endif
VISIBILITY ?= -fvisibility=hidden
PQR_CFLAGS := -std=gnu11 -fPIC $(VISIBILITY) -D_GNU_SOURCE -DPQR_BUILDING $(WARN) \
              $(shell pkg-config --cflags $(DEPS))
# libcurl: headers only; it is loaded with dlopen() on the first fetch (see http.c).
PQR_LIBS := $(shell pkg-config --libs libpq jansson libconfig) -lresolv -lpthread -ldl
SAN ?=

B := build
LIB_SRC := $(wildcard libpqroute/*.c)
LIB_OBJ := $(patsubst libpqroute/%.c,$(B)/obj/%.o,$(LIB_SRC))
LIB_SO := $(B)/libpqroute.so
PRELOAD_SO := $(B)/libpqroute-preload.so

all: $(LIB_SO) $(PRELOAD_SO) $(B)/libpqroute.pc $(B)/pqroute examples tests-build

# -MMD -MP: each object's header dependencies, written beside it (build/obj/*.d).
DEPFLAGS = -MMD -MP
$(B)/obj/%.o: libpqroute/%.c | $(B)/obj
	$(CC) $(CPPFLAGS) $(PQR_CFLAGS) $(DEPFLAGS) $(SAN) $(CFLAGS) -c -o $@ $<

$(B)/obj/shim-%.o: shim/%.c | $(B)/obj
	$(CC) $(CPPFLAGS) $(PQR_CFLAGS) $(DEPFLAGS) -Ilibpqroute $(SAN) $(CFLAGS) -c -o $@ $<

-include $(wildcard $(B)/obj/*.d)

$(B)/obj:
	mkdir -p $@

$(LIB_SO).$(VERSION): $(LIB_OBJ) libpqroute/libpqroute.map
	$(CC) -shared $(SAN) $(LDFLAGS) -Wl,-soname,libpqroute.so.$(SONAME) \
	  -Wl,--version-script=libpqroute/libpqroute.map -Wl,-z,defs -o $@ $(LIB_OBJ) $(PQR_LIBS)

$(LIB_SO): $(LIB_SO).$(VERSION)
	ln -sf libpqroute.so.$(VERSION) $(LIB_SO).$(SONAME)
	ln -sf libpqroute.so.$(VERSION) $@

# The shim links nothing but libc: it loads libpqroute.so (from its own directory) on the first
# connect of a process where routing is configured. It exports only the libpq names it wraps, and
# dlopen/dlsym (shim/intercept.c). Its SONAME is its file name: nothing links with it, but a
# library in the linker's directories carries one (Debian's lintian: an error without).
SHIM_OBJ := $(B)/obj/shim-shim.o $(B)/obj/shim-intercept.o
$(PRELOAD_SO): $(SHIM_OBJ) shim/shim.map | $(LIB_SO)
	$(CC) -shared $(SAN) $(LDFLAGS) -Wl,-soname,libpqroute-preload.so \
	  -Wl,--version-script=shim/shim.map -Wl,-z,defs \
	  -o $@ $(SHIM_OBJ) -lpthread -ldl

# The .pc carries the install paths: written once per set of paths (the stamp changes only when
# they do), and installed as it is.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	     -e 's|@VERSION@|$(VERSION)|'
PC_PATHS := $(PREFIX) $(LIBDIR) $(INCLUDEDIR) $(VERSION)
$(B)/pc.stamp: FORCE | $(B)/obj
	@[ "$$(cat $@ 2>/dev/null)" = "$(PC_PATHS)" ] || echo "$(PC_PATHS)" > $@
$(B)/libpqroute.pc: pkgconfig/libpqroute.pc.in $(B)/pc.stamp
	$(PC_SED) $< > $@
FORCE:

# The operator's tool: a client of the public API, like any other program. RPATH: where it finds
# libpqroute.so beside it (the build tree, $(PREFIX)/lib); empty for a package, whose library is in
# the system's directory.
RPATH ?= -Wl,-rpath,'$$ORIGIN:$$ORIGIN/../lib'
$(B)/pqroute: cli/pqroute.c $(HDR) | $(LIB_SO)
	$(CC) $(CPPFLAGS) -std=gnu11 -D_GNU_SOURCE $(WARN) -Ilibpqroute $(shell pkg-config --cflags libpq jansson) \
	  $(SAN) $(CFLAGS) $(LDFLAGS) -DPQRI_LIBDIR='"$(LIBDIR)"' -o $@ $< -L$(B) -lpqroute \
	  $(shell pkg-config --libs jansson libpq) $(RPATH)

# ---- examples and tests ----
EXAMPLES := $(B)/examples/rw-ro
examples: $(EXAMPLES)
$(B)/examples/%: examples/%.c $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=gnu11 $(WARN) -Ilibpqroute $(shell pkg-config --cflags libpq) $(SAN) \
	  $(CFLAGS) -o $@ $< -L$(B) -lpqroute $(shell pkg-config --libs libpq) -Wl,-rpath,'$$ORIGIN/..'

UNIT := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_*.c))
TOOLS := $(patsubst tests/tools/%.c,$(B)/tests/%,$(wildcard tests/tools/*.c))
PRELOAD_TOOLS := $(patsubst tests/tools/preload/%.c,$(B)/tests/%.so,$(wildcard tests/tools/preload/*.c))
tests-build: $(UNIT) $(TOOLS) $(PRELOAD_TOOLS) $(B)/tests/pqr-dlhost $(B)/tests/pqr-loadstress \
             $(B)/tests/pqr-cancel $(B)/bench/pqr-bench $(B)/bench/pqr-fleet

# A host that does not link libpq (it dlopen()s it, as plugin hosts and FFI layers do).
$(B)/tests/pqr-dlhost: tests/tools/dl/pqr-dlhost.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -o $@ $< -ldl

# Threads loading, unloading and looking up while the shim patches (tests/sh/t-loader-stress.sh).
$(B)/tests/pqr-loadstress: tests/tools/dl/pqr-loadstress.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -o $@ $< -ldl -lpthread

# A routed connection's cancel, old and new API (tests/libpq/t-pg18.sh).
$(B)/tests/pqr-cancel: tests/tools/dl/pqr-cancel.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=gnu11 -D_GNU_SOURCE $(WARN) $(shell pkg-config --cflags libpq) $(CFLAGS) -o $@ $< \
	  $(shell pkg-config --libs libpq) -ldl

# Fault-injecting preload libraries for the tests (a slow resolver, ...).
$(B)/tests/%.so: tests/tools/preload/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=gnu11 -fPIC -shared $(WARN) $(CFLAGS) -o $@ $< -ldl

# Unit tests link the objects directly: they exercise hidden internals.
$(B)/tests/test_%: tests/unit/test_%.c tests/unit/tap.h $(LIB_OBJ) $(wildcard libpqroute/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PQR_CFLAGS) $(SAN) $(CFLAGS) -Ilibpqroute -o $@ $< $(LIB_OBJ) $(PQR_LIBS)

# Tools are ordinary libpq programs: they know nothing of libpqroute.
$(B)/tests/%: tests/tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=gnu11 $(WARN) $(shell pkg-config --cflags libpq) $(SAN) \
	  $(CFLAGS) -o $@ $< $(shell pkg-config --libs libpq) -lpthread

# The fleet simulator links the library by its public API only, so that a baseline build of it can
# be swapped in with LD_LIBRARY_PATH (bench/run measures the design before issue 22 side by side).
$(B)/bench/pqr-fleet: bench/pqr-fleet.c $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=gnu11 $(WARN) -Ilibpqroute $(shell pkg-config --cflags libpq) $(CFLAGS) \
	  -o $@ $< -L$(B) -lpqroute -Wl,-rpath,$(abspath $(B)) -lpthread

$(B)/bench/pqr-bench: bench/pqr-bench.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=gnu11 $(WARN) $(shell pkg-config --cflags libpq) $(CFLAGS) -o $@ $< \
	  $(shell pkg-config --libs libpq)

# ---- sanitizers, fuzzing (issue: hardening); all run by `make check` ----
ASAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN := -fsanitize=thread
sanitizers:
	$(MAKE) --no-print-directory B=build-asan SAN="$(ASAN)" tests-build all
	$(MAKE) --no-print-directory B=build-tsan SAN="$(TSAN)" tests-build

CLANG ?= clang
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := $(B)/fuzz/fuzz_topology $(B)/fuzz/fuzz_conninfo
$(B)/fuzz/%: fuzz/%.c $(LIB_SRC) $(wildcard libpqroute/*.h)
	@mkdir -p $(dir $@)
	$(CLANG) -g -O1 -std=gnu11 -D_GNU_SOURCE -DPQR_BUILDING -fsanitize=fuzzer,address,undefined \
	  -Ilibpqroute $(shell pkg-config --cflags $(DEPS)) -o $@ $< $(LIB_SRC) $(PQR_LIBS)
fuzz-build: $(FUZZ_TARGETS)
# Each target for FUZZ_SECONDS, from the seed corpus in fuzz/corpus (new inputs go to build/).
fuzz: fuzz-build
	tests/fuzz $(FUZZ_SECONDS)

soak: all
	tests/soak

# Each small change in tests/mutants/list must make the unit suite fail (about 5 minutes).
mutants:
	tests/mutants/run

# arm64 (aarch64): a cross-build into build-arm64 against Debian's own arm64 packages, laid out by
# scripts/arm64-root (downloaded once, then cached): what tests/cluster/t17-arm64.sh runs under
# qemu-aarch64. Needs gcc-aarch64-linux-gnu (scripts/install-deps).
ARM64_ROOT ?= /var/cache/pqroute-arm64
ARM64_CC ?= aarch64-linux-gnu-gcc
arm64:
	scripts/arm64-root $(ARM64_ROOT)
	PKG_CONFIG_LIBDIR=$(ARM64_ROOT)/usr/lib/aarch64-linux-gnu/pkgconfig:$(ARM64_ROOT)/usr/share/pkgconfig \
	PKG_CONFIG_SYSROOT_DIR=$(ARM64_ROOT) $(MAKE) --no-print-directory B=build-arm64 \
	  CC="$(ARM64_CC) --sysroot=$(ARM64_ROOT)" build-arm64/libpqroute.so \
	  build-arm64/libpqroute-preload.so build-arm64/tests/pqr-dlhost build-arm64/tests/pqr-loadstress
# make check builds it where it can be run (qemu-user).
ARM64_CHECK := $(shell command -v $(ARM64_CC) >/dev/null && command -v qemu-aarch64 >/dev/null && echo arm64)

# The builds two at a time whatever make was called with (CI calls plain `make check`): the ASan,
# TSan and fuzz builds are ~90 s of compiling, 55 s on two cores.
check:
	$(MAKE) --no-print-directory -j2 all sanitizers fuzz-build $(ARM64_CHECK)
	tests/run

check-unit: all sanitizers fuzz-build
	tests/run unit

# The routing tests with each libpq from 12 to 18 (fetched with npm, checked, cached).
check-libpq: all
	tests/run libpq

# make check with two CPU-bound busy loops beside it (not part of make check).
check-stress: all sanitizers fuzz-build
	scripts/check-stress

# psycopg 3's and ruby-pg's own test suites without the shim, passed through and routed (issue 30).
check-peers: all
	tests/peers/run "$(PSYCOPG_SRC)" "$(RUBYPG_SRC)"

demo:
	scripts/install-deps
	$(MAKE) all
	demo/run

bench:
	scripts/install-deps
	$(MAKE) all
	bench/run

INSTALLED := $(LIBDIR)/libpqroute.so.$(VERSION) $(LIBDIR)/libpqroute.so.$(SONAME) \
	     $(LIBDIR)/libpqroute.so $(LIBDIR)/libpqroute-preload.so $(INCLUDEDIR)/libpqroute.h \
	     $(PKGCONFIGDIR)/libpqroute.pc $(BINDIR)/pqroute $(MANDIR)/man1/pqroute.1 \
	     $(MANDIR)/man3/libpqroute.3

# Builds only what it installs (not the tests, the examples or the benchmark).
install: $(LIB_SO) $(PRELOAD_SO) $(B)/pqroute $(B)/libpqroute.pc
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0755 $(LIB_SO).$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libpqroute.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpqroute.so.$(SONAME)
	ln -sf libpqroute.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpqroute.so
	install -m 0755 $(PRELOAD_SO) $(DESTDIR)$(LIBDIR)/
	install -m 0644 $(HDR) $(DESTDIR)$(INCLUDEDIR)/
	install -m 0644 $(B)/libpqroute.pc $(DESTDIR)$(PKGCONFIGDIR)/
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 0755 $(B)/pqroute $(DESTDIR)$(BINDIR)/
	install -m 0644 man/pqroute.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 man/libpqroute.3 $(DESTDIR)$(MANDIR)/man3/

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

# The Debian packages (debian/): libpqroute0, libpqroute-dev and pqroute, in $(B)/deb/, built from a
# copy of this tree without its build directories (dpkg-buildpackage writes beside the tree it
# builds); lintian must find no error (README: "Installing from the Debian packages").
deb:
	scripts/install-deps
	rm -rf $(B)/deb
	mkdir -p $(B)/deb/src
	tar -cf - --exclude=./build --exclude='./build-*' --exclude=./.git . | tar -xf - -C $(B)/deb/src
	cd $(B)/deb/src && dpkg-buildpackage -us -uc -b
	rm -rf $(B)/deb/src
	lintian --fail-on error $(B)/deb/*.changes

# Installs the packages, tests them with the loopback cluster, and purges them (tests/deb/; as
# root; about 2 minutes with the build).
check-deb: deb
	PQR_DEB_DIR=$(B)/deb tests/run deb

clean:
	rm -rf $(B) build-asan build-tsan build-arm64

.PHONY: arm64 soak all examples tests-build check check-unit check-stress check-libpq check-peers demo bench install uninstall deb check-deb clean sanitizers fuzz fuzz-build mutants FORCE
