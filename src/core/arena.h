/* A bump allocator for data loaded once and freed together (a manifest, a
 * config): no per-object frees, no leaks on error paths. Not for the
 * message path. */
#ifndef TE_ARENA_H
#define TE_ARENA_H

#include <stddef.h>

struct te_arena_chunk;

struct te_arena {
	struct te_arena_chunk *head;
	size_t used; /* bytes allocated from all chunks */
};

/* Zeroed, 16-byte aligned memory, or NULL when out of memory. */
void *te_arena_alloc(struct te_arena *a, size_t n);
char *te_arena_strdup(struct te_arena *a, const char *s);
void te_arena_free(struct te_arena *a);

#endif
