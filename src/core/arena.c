#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

#define ARENA_CHUNK 4096

struct te_arena_chunk {
	struct te_arena_chunk *next;
	size_t cap, len;
	_Alignas(16) unsigned char data[];
};

void *te_arena_alloc(struct te_arena *a, size_t n)
{
	struct te_arena_chunk *c = a->head;
	void *p;

	if (n > SIZE_MAX / 2)
		return NULL;
	n = n ? (n + 15) & ~(size_t)15 : 16;
	if (!c || c->cap - c->len < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;

		c = calloc(1, sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->next = a->head;
		a->head = c;
	}
	p = c->data + c->len;
	c->len += n;
	a->used += n;
	return p;
}

char *te_arena_strdup(struct te_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = te_arena_alloc(a, n);

	if (p)
		memcpy(p, s, n);
	return p;
}

void te_arena_free(struct te_arena *a)
{
	while (a->head) {
		struct te_arena_chunk *next = a->head->next;

		free(a->head);
		a->head = next;
	}
	a->used = 0;
}
