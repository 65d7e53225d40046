#ifndef TE_FUZZ_H
#define TE_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Select the target by name (json, config, manifest); -1 if unknown. */
int te_fuzz_set_mode(const char *name);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);

#endif
