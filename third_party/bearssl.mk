# BearSSL — TLS 1.2, X.509, HMAC-SHA256; no malloc, caller-owned buffers.
# Pinned to Debian 12's upstream tarball (+dfsg: the test vectors' non-free
# files removed; the library is unchanged).
BEARSSL_VERSION := 0.6
BEARSSL_SOURCE  := bearssl
BEARSSL_TARBALL := bearssl_0.6+dfsg.1.orig.tar.xz
BEARSSL_SHA256  := 102a625bd8f6155260867a50c508df8d8c3f796985dd744df1a68e5cd1a79004
BEARSSL_DIR     := bearssl-0.6

BEARSSL_SRC := $(TP_SRC)/$(BEARSSL_DIR)
BEARSSL_INC := $(BEARSSL_SRC)/inc
BEARSSL_LIB := $(BUILD)/third_party/libbearssl.a
BEARSSL_CFLAGS := -Os -ffunction-sections -fdata-sections -w -I$(BEARSSL_SRC)/inc -I$(BEARSSL_SRC)/src

# Every library source file; the tools/ and test/ trees are not built.
BEARSSL_OBJDIR := $(BUILD)/third_party/bearssl
$(BEARSSL_LIB): $(TP_STAMP)
	@mkdir -p $(BEARSSL_OBJDIR)
	@set -e; objs=; for f in $$(cd $(BEARSSL_SRC)/src && find . -name '*.c' | sort); do \
	  o=$(BEARSSL_OBJDIR)/$$(echo $$f | sed 's|^\./||; s|/|_|g; s|\.c$$|.o|'); \
	  if [ ! -f $$o ] || [ $(BEARSSL_SRC)/src/$$f -nt $$o ]; then \
	    echo "  CC bearssl/$$f"; $(CC) $(TP_CFLAGS) $(BEARSSL_CFLAGS) -c $(BEARSSL_SRC)/src/$$f -o $$o; fi; \
	  objs="$$objs $$o"; done; rm -f $@; $(AR) rcs $@ $$objs
