/* Internals of the TLS client, shared by tls.c (the session) and
 * tls_load.c (PEM files into trust anchors, client chain and key). */
#ifndef TE_TLS_INT_H
#define TE_TLS_INT_H

#include <bearssl.h>

#include "upstream/tls.h"

struct te_tls {
	br_ssl_client_context cc;
	br_x509_minimal_context xc;
	/* Trust anchors, in one block with their DN and key bytes. */
	br_x509_trust_anchor *anchors;
	size_t n_anchors;
	/* Client chain (leaf first), in one block with the DER bytes; the key
	 * lives in the decoder context. key_type 0: no client certificate. */
	br_x509_certificate *chain;
	size_t chain_len;
	br_skey_decoder_context key;
	int key_type;
	int fd;   /* -1: no session */
	int fail; /* the session's sticky error (< 0), or 0 */
	bool ready;   /* the handshake completed (tls_state) */
	bool floored;
	int64_t time_floor;
	int64_t vtime;    /* the validation time of the last te_tls_start */
	char server_name[TE_TLS_NAME_MAX + 1];
	char msg[TE_TLS_ERR_MAX]; /* te_tls_error() */
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
};

/* tls_load.c. Each fills its part of t and, on failure, err with
 * "FILE: problem". */
int tls_load_anchors(struct te_tls *t, const char *path, char *err, size_t errlen);
int tls_load_client(struct te_tls *t, const char *cert_file, const char *key_file,
		    char *err, size_t errlen);

/* tls.c: a short reason for a BearSSL error code (engine or X.509), or
 * NULL for a code it does not know. */
const char *tls_br_reason(int br_err);

#endif
