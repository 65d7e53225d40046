# LMDB — crash-proof B-tree in one mmap (offline store, twins).
# Pinned to Debian 12's upstream tarball; scripts/deps.sh fetches and verifies it.
LMDB_VERSION := 0.9.24
LMDB_SOURCE  := lmdb
LMDB_TARBALL := lmdb_0.9.24.orig.tar.gz
LMDB_SHA256  := 8e7200fdc9bb09b0cfad1d4eee8b20d539e43fe05c7ef9406247d64659c4a480
LMDB_DIR     := lmdb-0.9.24

LMDB_SRC  := $(TP_SRC)/$(LMDB_DIR)/libraries/liblmdb
LMDB_INC  := $(LMDB_SRC)
LMDB_LIB  := $(BUILD)/third_party/liblmdb.a
# MDB_USE_ROBUST=0 in every build, the shipped one included: qemu-user lacks
# set_robust_list (see PITFALLS), and the binary tested under qemu is the one
# shipped; stale readers are cleared by mdb_reader_check() instead.
LMDB_CFLAGS := -Os -ffunction-sections -fdata-sections -DMDB_USE_ROBUST=0 -w
# MIPS: mdb.c includes the kernel's <asm/cachectl.h>, which a libc-only
# sysroot (Debian's musl-dev:mipsel) lacks; src/compat has the three
# values it needs, searched after the toolchain's own headers (-idirafter).
# Recursive (=): $(CC) is asked only when the target library is built.
LMDB_TARGET_CFLAGS = $(if $(findstring mips,$(shell $(CC) -dumpmachine)),-idirafter src/compat)

$(LMDB_LIB): $(TP_STAMP)
	@mkdir -p $(BUILD)/third_party/lmdb
	$(CC) $(TP_CFLAGS) $(LMDB_CFLAGS) $(LMDB_TARGET_CFLAGS) -c $(LMDB_SRC)/mdb.c -o $(BUILD)/third_party/lmdb/mdb.o
	$(CC) $(TP_CFLAGS) $(LMDB_CFLAGS) -c $(LMDB_SRC)/midl.c -o $(BUILD)/third_party/lmdb/midl.o
	rm -f $@ && $(AR) rcs $@ $(BUILD)/third_party/lmdb/mdb.o $(BUILD)/third_party/lmdb/midl.o
