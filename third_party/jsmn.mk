# jsmn — a JSON tokenizer in one header, no allocation. It tokenizes, it does
# not validate: src/core/json.c does the validation (see PITFALLS).
JSMN_VERSION := 1.1.0
JSMN_SOURCE  := jsmn
JSMN_TARBALL := jsmn_1.1.0.orig.tar.gz
JSMN_SHA256  := 5f0913a10657fe7ec8d5794ccf00a01000e3e1f2f1e1f143c34a0f7b47edcb38
JSMN_DIR     := jsmn-1.1.0

JSMN_INC := $(TP_SRC)/$(JSMN_DIR)
