# tinyedge — plain GNU make.
#
#   make              build/tinyedge: static musl binary (-Os, section GC),
#                     stripped; build/tinyedge.debug keeps the symbols
#   make test         unit tests (ASan+UBSan), the cross binaries under qemu,
#                     end-to-end tests; ends with "N passed, M failed"
#   make test-cross   the three cross binaries under qemu-user only
#   make test-long    the hardening suites at full length (docs/reliability.md):
#                     200 kills, a 30-minute soak, valgrind, 10 minutes of
#                     fuzzing per target; make test runs their short versions
#   make test-SUITE   one suite (SUITE: $(SUITES)), short; TE_LONG=1 for long
#   make demo         the whole product in under a minute: the sample
#                     deployment offline, then draining to a local mosquitto
#                     over TLS; a twin, a method, a clean stop
#   make bench        "name value unit" lines (with the cross binaries' sizes)
#   make install      DESTDIR=... PREFIX=/usr INIT=sysv|procd|systemd|none
#                     INIT (default sysv): which service files go with the
#                     binary, SDK, JSON samples and state dir —
#                     sysv: /etc/init.d/tinyedge + /etc/default/tinyedge (Yocto,
#                     Busybox); procd: /etc/init.d/tinyedge (rc.common/procd) +
#                     /etc/config/tinyedge (OpenWrt); systemd:
#                     $(PREFIX)/lib/systemd/system/tinyedge.service; none
#
# Cross builds (docs/cross.md):
#   make CROSS=aarch64|armhf|mipsel   Debian's cross gcc with musl-dev:<arch>'s
#                     specs; BUILD=build/<arch> unless given
#   make cross        all three
#   make CC=mipsel-openwrt-linux-musl-gcc CROSS_COMPILE=mipsel-openwrt-linux-musl- \
#        BUILD=build/openwrt              any other musl toolchain

VERSION := 0.1.0

# CROSS=ARCH: Debian's gcc-<triplet> and musl-dev:<dpkg arch> (its
# musl-gcc.specs points the gcc at musl's headers, crt files and libc).
CROSS_ARCHS := aarch64 armhf mipsel
cross_triplet = $(if $(filter aarch64,$(1)),aarch64-linux-gnu,$(if $(filter armhf,$(1)),arm-linux-gnueabihf,mipsel-linux-gnu))
cross_musl = $(if $(filter aarch64,$(1)),aarch64-linux-musl,$(if $(filter armhf,$(1)),arm-linux-musleabihf,mipsel-linux-musl))
cross_cc = $(call cross_triplet,$(1))-gcc -specs /usr/lib/$(call cross_musl,$(1))/musl-gcc.specs
# Every toolchain variable of one CROSS build, for sub-makes: the caller's
# command line (CC=, BUILD=) must not leak into them.
cross_vars = CROSS=$(1) BUILD=build/$(1) CROSS_COMPILE=$(call cross_triplet,$(1))- \
	CC="$(call cross_cc,$(1))" AR=$(call cross_triplet,$(1))-ar STRIP=$(call cross_triplet,$(1))-strip
CROSS ?=
ifneq ($(CROSS),)
  ifneq ($(words $(CROSS))$(filter $(CROSS_ARCHS),$(CROSS)),1$(CROSS))
    $(error CROSS=$(CROSS): unknown; valid: $(CROSS_ARCHS) (other toolchains: CC=... CROSS_COMPILE=..., see docs/cross.md))
  endif
  CROSS_COMPILE ?= $(call cross_triplet,$(CROSS))-
  ifeq ($(origin CC),default)
    CC := $(call cross_cc,$(CROSS))
  endif
  BUILD ?= build/$(CROSS)
endif

BUILD ?= build
CROSS_COMPILE ?=
ifeq ($(origin CC),default)
  ifeq ($(CROSS_COMPILE),)
    CC := musl-gcc
  else
    CC := $(CROSS_COMPILE)gcc
  endif
endif
ifeq ($(origin AR),default)
  AR := $(CROSS_COMPILE)ar
endif
STRIP ?= $(CROSS_COMPILE)strip
HOSTCC ?= gcc
PYTHON ?= /usr/bin/python3
PREFIX ?= /usr
DESTDIR ?=
INIT ?= sysv
INIT_KINDS := sysv procd systemd none
ifneq ($(filter install,$(MAKECMDGOALS)),)
  ifneq ($(words $(INIT)),1)
    $(error INIT must be one of $(INIT_KINDS), got '$(INIT)')
  endif
  ifeq ($(filter $(INIT),$(INIT_KINDS)),)
    $(error INIT must be one of $(INIT_KINDS), got '$(INIT)')
  endif
endif

.DEFAULT_GOAL := all
TP_SRC := third_party/src
TP_STAMP := $(TP_SRC)/.stamp
TP_CFLAGS :=

include third_party/jsmn.mk
include third_party/lmdb.mk
include third_party/bearssl.mk

OPTFLAGS ?= -Os
WARN := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation
CPPFLAGS_TE := -D_GNU_SOURCE -Isrc -Isrc/core -Iinclude -I$(JSMN_INC) -I$(LMDB_INC) -I$(BEARSSL_INC) -I$(BUILD)
CFLAGS_TE := -std=gnu11 $(OPTFLAGS) $(WARN) -ffunction-sections -fdata-sections \
	-fno-asynchronous-unwind-tables -fno-unwind-tables $(CFLAGS)
LDFLAGS_TE := -static -Wl,--gc-sections $(LDFLAGS)
# musl has these in libc; glibc (a Yocto default) needs them named.
LDLIBS_TE := -lm -lpthread

SRCS := $(sort $(wildcard src/*/*.c))
MAIN := src/main.c
OBJS := $(SRCS:%.c=$(BUILD)/obj/%.o) $(MAIN:%.c=$(BUILD)/obj/%.o)
DEPS := $(OBJS:.o=.d)

# The module SDK for modules written in C: include/tinyedge/module.h +
# libtinyedge-module.a (static, same CC as the daemon).
SDK_SRCS := src/sdk/module.c src/hub/ring.c src/hub/wire.c src/hub/msg.c src/core/err.c
SDK_LIB := $(BUILD)/libtinyedge-module.a

# Host build for unit tests: every source but main, with the sanitizers.
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
HOST_CFLAGS := -std=gnu11 -g -O1 $(WARN) -Werror $(SAN)
HOST_OBJS := $(SRCS:%.c=$(BUILD)/host/%.o)
HOST_LIB := $(BUILD)/host/libte.a
# LMDB for the unit tests, host-compiled (no sanitizers on LMDB itself).
HOST_LMDB := $(BUILD)/host/third_party/liblmdb.a
# BearSSL likewise (TLS, HMAC for the upstream's unit tests).
HOST_BEARSSL := $(BUILD)/host/third_party/libbearssl.a
UNIT_SRCS := $(sort $(wildcard test/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(BUILD)/test/%) $(BUILD)/test/test_fuzz_replay

# Fuzzing: one target binary with modes (TE_FUZZ=json|config|...; FUZZ_MODES).
FUZZ_BIN := $(BUILD)/fuzz/tinyedge-fuzz
FUZZ_SECS ?= 60
FUZZ_MODES := json config manifest patch record ctl ring route stdio mqtt azure twin methods http request
FUZZ_SRCS := test/fuzz/targets.c test/fuzz/fuzz_ring.c test/fuzz/fuzz_route.c \
	test/fuzz/fuzz_stdio.c test/fuzz/fuzz_mqtt.c test/fuzz/fuzz_azure.c test/fuzz/fuzz_twin.c \
	test/fuzz/fuzz_methods.c test/fuzz/fuzz_http.c test/fuzz/fuzz_request.c

# The clock floor for certificate checks on devices without an RTC: the
# commit's time (reproducible), else now.
BUILD_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)

.PHONY: all deps test test-unit test-e2e test-cross test-long $(addprefix test-,$(SUITES)) fuzz-coverage valgrind-build cross demo bench fuzz install clean distclean \
	prereqs-build prereqs-test prereqs-demo prereqs-cross
.DELETE_ON_ERROR:

all: prereqs-build
	@$(MAKE) --no-print-directory $(BUILD)/tinyedge $(SDK_LIB)

# Installs what is missing when root (apt-get), else prints the command.
# CROSS=ARCH needs that architecture's cross set instead of musl-tools.
prereqs-build:
	@CC="$(CC)" scripts/prereqs.sh $(if $(CROSS),cross $(CROSS),build)

prereqs-cross:
	@CC="$(CC)" scripts/prereqs.sh cross

prereqs-test:
	@CC="$(CC)" scripts/prereqs.sh test

prereqs-demo:
	@CC="$(CC)" scripts/prereqs.sh demo

$(TP_STAMP): scripts/deps.sh $(wildcard third_party/*.mk)
	scripts/deps.sh
	@touch $@

deps: $(TP_STAMP)

# version.h changes only when its content does, so a rebuild is not forced.
$(BUILD)/version.h: FORCE
	@mkdir -p $(BUILD)
	@printf '%s\n' \
	  '#define TE_VERSION "$(VERSION)"' \
	  '#define TE_GIT_COMMIT "$(GIT_COMMIT)"' \
	  '#define TE_BUILD_CC "$(firstword $(CC))"' \
	  '#define TE_BUILD_CFLAGS "$(strip $(OPTFLAGS) $(CFLAGS))"' \
	  '#define TE_DEP_LMDB "$(LMDB_VERSION)"' \
	  '#define TE_DEP_BEARSSL "$(BEARSSL_VERSION)"' \
	  '#define TE_DEP_JSMN "$(JSMN_VERSION)"' \
	  '#define TE_BUILD_EPOCH $(BUILD_EPOCH)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi
FORCE:

# The target's syscall table (seccomp.c), from its libc's <sys/syscall.h>;
# the unit and fuzz builds get the host compiler's own copy.
$(BUILD)/syscalls.h: scripts/gen-syscalls.sh
	@mkdir -p $(dir $@)
	@scripts/gen-syscalls.sh "$(CC)" > $@
$(BUILD)/host/gen/syscalls.h: scripts/gen-syscalls.sh
	@mkdir -p $(dir $@)
	@scripts/gen-syscalls.sh "$(HOSTCC)" > $@
$(BUILD)/obj/src/agent/seccomp.o: $(BUILD)/syscalls.h
$(BUILD)/host/src/agent/seccomp.o: $(BUILD)/host/gen/syscalls.h

$(BUILD)/obj/%.o: %.c $(TP_STAMP) $(BUILD)/version.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS_TE) $(CFLAGS_TE) -MMD -MP -c $< -o $@

$(BUILD)/tinyedge.debug: $(OBJS) $(LMDB_LIB) $(BEARSSL_LIB)
	$(CC) $(CFLAGS_TE) $(LDFLAGS_TE) -o $@ $(OBJS) $(LMDB_LIB) $(BEARSSL_LIB) $(LDLIBS_TE)

$(SDK_LIB): $(SDK_SRCS:%.c=$(BUILD)/obj/%.o)
	@rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/tinyedge: $(BUILD)/tinyedge.debug
	$(STRIP) -s -R .comment -o $@ $<

$(BUILD)/host/%.o: %.c $(TP_STAMP) $(BUILD)/version.h
	@mkdir -p $(dir $@)
	@echo "  HOSTCC  $<"
	@$(HOSTCC) -I$(BUILD)/host/gen $(CPPFLAGS_TE) $(HOST_CFLAGS) -MMD -MP -c $< -o $@

$(HOST_LIB): $(HOST_OBJS)
	@rm -f $@ && ar rcs $@ $^

$(HOST_LMDB): $(TP_STAMP)
	@mkdir -p $(dir $@)
	@echo "  HOSTCC  liblmdb"
	@$(HOSTCC) -g $(LMDB_CFLAGS) -c $(LMDB_SRC)/mdb.c -o $(dir $@)mdb.o
	@$(HOSTCC) -g $(LMDB_CFLAGS) -c $(LMDB_SRC)/midl.c -o $(dir $@)midl.o
	@rm -f $@ && ar rcs $@ $(dir $@)mdb.o $(dir $@)midl.o

$(HOST_BEARSSL): $(TP_STAMP)
	@mkdir -p $(dir $@)bearssl
	@echo "  HOSTCC  libbearssl"
	@set -e; objs=; for f in $$(cd $(BEARSSL_SRC)/src && find . -name '*.c' | sort); do \
	  o=$(dir $@)bearssl/$$(echo $$f | sed 's|^\./||; s|/|_|g; s|\.c$$|.o|'); \
	  $(HOSTCC) -g $(BEARSSL_CFLAGS) -c $(BEARSSL_SRC)/src/$$f -o $$o; \
	  objs="$$objs $$o"; done; rm -f $@; ar rcs $@ $$objs

$(BUILD)/test/%: test/unit/%.c $(wildcard test/unit/*.h) $(HOST_LIB) $(HOST_LMDB) $(HOST_BEARSSL)
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(HOSTCC) $(CPPFLAGS_TE) -Itest/unit $(HOST_CFLAGS) $< $(HOST_LIB) $(HOST_LMDB) $(HOST_BEARSSL) -o $@ -lpthread -lm

# The kept fuzz corpora, replayed under ASan+UBSan by `make test`.
$(BUILD)/test/test_fuzz_replay: test/fuzz/replay.c $(FUZZ_SRCS) test/fuzz/fuzz.h test/unit/tap.h $(HOST_LIB) $(HOST_LMDB) $(HOST_BEARSSL)
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(HOSTCC) $(CPPFLAGS_TE) -Itest/unit -Itest/fuzz $(HOST_CFLAGS) test/fuzz/replay.c $(FUZZ_SRCS) $(HOST_LIB) $(HOST_LMDB) $(HOST_BEARSSL) -o $@ -lm -lpthread

# make fuzz: libFuzzer over each mode for FUZZ_SECS seconds; new inputs go
# to $(BUILD)/fuzz/corpus-MODE (copy the interesting ones to test/fuzz/corpus).
$(FUZZ_BIN): $(SRCS) $(FUZZ_SRCS) test/fuzz/fuzz.h $(TP_STAMP) $(BUILD)/version.h $(HOST_BEARSSL) $(BUILD)/host/gen/syscalls.h
	@mkdir -p $(dir $@)
	@mkdir -p $(BUILD)/fuzz/lmdb
	clang -g -O1 $(LMDB_CFLAGS) -c $(LMDB_SRC)/mdb.c -o $(BUILD)/fuzz/lmdb/mdb.o
	clang -g -O1 $(LMDB_CFLAGS) -c $(LMDB_SRC)/midl.c -o $(BUILD)/fuzz/lmdb/midl.o
	clang -I$(BUILD)/host/gen $(CPPFLAGS_TE) -Itest/fuzz -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined \
	  $(filter-out src/agent/daemon.c src/control/cmd_%.c src/modules/%.c,$(SRCS)) $(FUZZ_SRCS) \
	  $(BUILD)/fuzz/lmdb/mdb.o $(BUILD)/fuzz/lmdb/midl.o $(HOST_BEARSSL) -o $@ -lm -lpthread

# The daemon for valgrind (make test-valgrind): memcheck cannot see inside a
# static musl binary's malloc, so the same sources are built with the host's
# gcc and glibc, dynamic, -O1 -g, no sanitizers; LMDB and BearSSL are the
# unit tests' plain host builds.
VG_BIN := $(BUILD)/vg/tinyedge
VG_OBJS := $(SRCS:%.c=$(BUILD)/vg/%.o) $(MAIN:%.c=$(BUILD)/vg/%.o)

$(BUILD)/vg/%.o: %.c $(TP_STAMP) $(BUILD)/version.h
	@mkdir -p $(dir $@)
	@echo "  VGCC    $<"
	@$(HOSTCC) -I$(BUILD)/host/gen $(CPPFLAGS_TE) -std=gnu11 -g -O1 $(WARN) -MMD -MP -c $< -o $@

$(BUILD)/vg/src/agent/seccomp.o: $(BUILD)/host/gen/syscalls.h

$(VG_BIN): $(VG_OBJS) $(HOST_LMDB) $(HOST_BEARSSL)
	@$(HOSTCC) -o $@ $(VG_OBJS) $(HOST_LMDB) $(HOST_BEARSSL) -lm -lpthread

valgrind-build: $(VG_BIN)

# make fuzz-coverage: the source lines each mode's corpora reach
# (scripts/fuzz-coverage.sh), from a clang coverage build of the targets.
FUZZ_COV_BIN := $(BUILD)/fuzz/tinyedge-fuzz-cov
$(FUZZ_COV_BIN): $(FUZZ_BIN)
	clang -I$(BUILD)/host/gen $(CPPFLAGS_TE) -Itest/fuzz -std=gnu11 -g -O1 -fsanitize=fuzzer \
	  -fprofile-instr-generate -fcoverage-mapping \
	  $(filter-out src/agent/daemon.c src/control/cmd_%.c src/modules/%.c,$(SRCS)) $(FUZZ_SRCS) \
	  $(BUILD)/fuzz/lmdb/mdb.o $(BUILD)/fuzz/lmdb/midl.o $(HOST_BEARSSL) -o $@ -lm -lpthread

fuzz-coverage: $(FUZZ_COV_BIN)
	@BUILD=$(BUILD) COV_BIN=$(FUZZ_COV_BIN) scripts/fuzz-coverage.sh

fuzz: $(FUZZ_BIN)
	@for m in $(FUZZ_MODES); do mkdir -p $(BUILD)/fuzz/corpus-$$m; \
	  echo "fuzz: $$m for $(FUZZ_SECS) s"; \
	  TE_FUZZ=$$m $(FUZZ_BIN) -max_total_time=$(FUZZ_SECS) -print_final_stats=1 \
	    $(BUILD)/fuzz/corpus-$$m test/fuzz/corpus/$$m 2>&1 | tail -n 3 || exit 1; done

test: prereqs-test
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory cross
	@$(MAKE) --no-print-directory $(UNIT_BINS) $(VG_BIN)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) scripts/test.sh

# The hardening suites (docs/security.md, docs/reliability.md): each is
# test/e2e/test_SUITE.py, short inside make test, long with TE_LONG=1.
SUITES := escape abuse crash powercut netfaults tls_matrix clock soak valgrind
$(addprefix test-,$(SUITES)): all
	@BUILD=$(BUILD) PYTHON=$(PYTHON) scripts/test.sh suite $(@:test-%=%)
test-valgrind: $(VG_BIN)

test-long: prereqs-test
	@$(MAKE) --no-print-directory all $(VG_BIN)
	@TE_LONG=1 BUILD=$(BUILD) PYTHON=$(PYTHON) scripts/test.sh suite $(SUITES)
	@$(MAKE) --no-print-directory fuzz FUZZ_SECS=600
	@$(MAKE) --no-print-directory fuzz-coverage

test-unit: $(UNIT_BINS)
	@BUILD=$(BUILD) scripts/test.sh unit

test-e2e: all
	@BUILD=$(BUILD) PYTHON=$(PYTHON) scripts/test.sh e2e

# build/<arch>/tinyedge for each of CROSS_ARCHS.
cross:
	@set -e; $(foreach a,$(CROSS_ARCHS),echo "cross: $(a)"; $(MAKE) --no-print-directory $(call cross_vars,$(a)) all;)

# The cross binaries under qemu-user (scripts/test-cross.sh, docs/cross.md).
test-cross: prereqs-cross
	@$(MAKE) --no-print-directory cross
	@scripts/test.sh cross

demo: prereqs-demo
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/demo.sh

# Micro-benchmarks built like the daemon (static musl, -Os).
$(BUILD)/bench/ring_bench: test/bench/ring_bench.c src/hub/ring.c src/core/err.c $(TP_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(CPPFLAGS_TE) $(CFLAGS_TE) $(LDFLAGS_TE) $(filter %.c,$^) -o $@

STORE_SRCS := $(sort $(wildcard src/store/*.c)) src/core/err.c src/core/fs.c src/core/log.c
$(BUILD)/bench/store_bench: test/bench/store_bench.c $(STORE_SRCS) $(LMDB_LIB) $(TP_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(CPPFLAGS_TE) $(CFLAGS_TE) $(LDFLAGS_TE) $(filter %.c,$^) $(LMDB_LIB) -o $@

# The cross binaries too, when their compilers are installed (for their
# stripped sizes); a note on stderr for each one skipped.
bench: all $(BUILD)/bench/ring_bench $(BUILD)/bench/store_bench
	@$(foreach a,$(CROSS_ARCHS),if command -v $(call cross_triplet,$(a))-gcc >/dev/null 2>&1 && \
	  [ -f /usr/lib/$(call cross_musl,$(a))/musl-gcc.specs ]; then \
	  $(MAKE) --no-print-directory $(call cross_vars,$(a)) all >/dev/null || exit 1; \
	  else echo "bench: no $(a) cross compiler (make prereqs-cross): its size is skipped" >&2; fi;)
	@BUILD=$(BUILD) scripts/bench.sh

# The service files name the binary as /usr/bin/tinyedge: point them at
# $(PREFIX)/bin. $(1) source, $(2) destination, $(3) mode.
install_svc = sed 's|/usr/bin/tinyedge|$(PREFIX)/bin/tinyedge|g' $(1) > $(2) && chmod $(3) $(2)

install: all
	install -d -m 0755 $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/tinyedge \
		$(DESTDIR)$(PREFIX)/include/tinyedge $(DESTDIR)$(PREFIX)/lib $(DESTDIR)/var/lib
	install -m 0755 $(BUILD)/tinyedge $(DESTDIR)$(PREFIX)/bin/tinyedge
	install -m 0644 include/tinyedge/module.h include/tinyedge/wire.h $(DESTDIR)$(PREFIX)/include/tinyedge/
	install -m 0644 $(SDK_LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 rootfs/etc/tinyedge/deployment.json $(DESTDIR)/etc/tinyedge/deployment.json
	install -m 0600 rootfs/etc/tinyedge/config.json $(DESTDIR)/etc/tinyedge/config.json
	install -d -m 0700 $(DESTDIR)/var/lib/tinyedge
ifeq ($(INIT),sysv)
	install -d -m 0755 $(DESTDIR)/etc/init.d $(DESTDIR)/etc/default
	$(call install_svc,rootfs/etc/init.d/tinyedge,$(DESTDIR)/etc/init.d/tinyedge,0755)
	install -m 0644 rootfs/etc/default/tinyedge $(DESTDIR)/etc/default/tinyedge
endif
ifeq ($(INIT),procd)
	install -d -m 0755 $(DESTDIR)/etc/init.d $(DESTDIR)/etc/config
	$(call install_svc,rootfs/etc/init.d/tinyedge.procd,$(DESTDIR)/etc/init.d/tinyedge,0755)
	install -m 0644 rootfs/etc/config/tinyedge $(DESTDIR)/etc/config/tinyedge
endif
ifeq ($(INIT),systemd)
	install -d -m 0755 $(DESTDIR)$(PREFIX)/lib/systemd/system
	$(call install_svc,rootfs/lib/systemd/system/tinyedge.service,$(DESTDIR)$(PREFIX)/lib/systemd/system/tinyedge.service,0644)
endif

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(TP_SRC) third_party/dl

-include $(DEPS) $(HOST_OBJS:.o=.d) $(VG_OBJS:.o=.d)
