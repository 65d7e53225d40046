#ifndef TE_FUZZ_H
#define TE_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Targets in their own files. */
void te_fuzz_record(const uint8_t *data, size_t n); /* fuzz_ring.c */
void te_fuzz_ctl(const uint8_t *data, size_t n);    /* fuzz_ring.c */
void te_fuzz_ring(const uint8_t *data, size_t n);   /* fuzz_ring.c */
void te_fuzz_route(const uint8_t *data, size_t n);  /* fuzz_route.c */
void te_fuzz_stdio(const uint8_t *data, size_t n);  /* fuzz_stdio.c */
void te_fuzz_mqtt(const uint8_t *data, size_t n);   /* fuzz_mqtt.c */
void te_fuzz_azure(const uint8_t *data, size_t n);  /* fuzz_azure.c */
void te_fuzz_twin(const uint8_t *data, size_t n);   /* fuzz_twin.c */
void te_fuzz_methods(const uint8_t *data, size_t n); /* fuzz_methods.c */
void te_fuzz_http(const uint8_t *data, size_t n);   /* fuzz_http.c */
void te_fuzz_request(const uint8_t *data, size_t n); /* fuzz_request.c */

/* Message views equal field by field (fuzz_ring.c; also used by
 * fuzz_stdio.c's round trip). */
#include <stdbool.h>
#include "hub/msg.h"
bool te_fuzz_str_same(struct te_str a, struct te_str b);
bool te_fuzz_msg_same(const struct te_msg *a, const struct te_msg *b);

/* Select the target by name (json, config, manifest, patch, record, ctl,
 * ring, route, stdio, mqtt, azure, twin,
 * methods, http, request); -1 if unknown. */
int te_fuzz_set_mode(const char *name);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);

#endif
