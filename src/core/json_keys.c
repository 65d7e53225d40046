/* Duplicate object keys, found without allocating (see json_int.h).
 *
 * An object's key tokens are linked into a list through their size fields
 * (0 for every string token), the list is merge-sorted by key (bottom-up,
 * stable: O(m log m) key comparisons), adjacent keys are compared, and the
 * size fields are zeroed again. A key's next field is not touched, so
 * TE_JSON_FOREACH_MEMBER still works meanwhile. */
#include <stdint.h>

#include "json.h"
#include "json_int.h"

#define NONE UINT32_MAX
#define LINK(doc, k) ((doc)->tok[k].size)

static int key_cmp(const struct te_json_doc *doc, uint32_t x, uint32_t y)
{
	struct te_json_ustr a, b;
	int ca, cb;

	te_json_ustr_init(&a, doc, x);
	te_json_ustr_init(&b, doc, y);
	do {
		ca = te_json_ustr_get(&a);
		cb = te_json_ustr_get(&b);
	} while (ca == cb && ca >= 0);
	return ca - cb;
}

/* Merge the sorted runs a and b (every index in a is below every index in
 * b); ties take from a, so equal keys stay in document order. The last
 * key goes to *tail. */
static uint32_t key_merge(struct te_json_doc *doc, uint32_t a, uint32_t b,
			  uint32_t *tail)
{
	uint32_t head = NONE, last = NONE, k;

	while (a != NONE || b != NONE) {
		if (b == NONE || (a != NONE && key_cmp(doc, b, a) >= 0)) {
			k = a;
			a = LINK(doc, a);
		} else {
			k = b;
			b = LINK(doc, b);
		}
		if (last == NONE)
			head = k;
		else
			LINK(doc, last) = k;
		last = k;
	}
	*tail = last;
	return head;
}

/* Cut the first n keys off *list; returns them, still linked. */
static uint32_t key_cut(struct te_json_doc *doc, uint32_t *list, unsigned n)
{
	uint32_t head = *list, k = head;

	for (unsigned i = 1; i < n && k != NONE; i++)
		k = LINK(doc, k);
	if (k == NONE) {
		*list = NONE;
	} else {
		*list = LINK(doc, k);
		LINK(doc, k) = NONE;
	}
	return head;
}

/* Stable bottom-up merge sort of the linked keys. */
static uint32_t key_sort(struct te_json_doc *doc, uint32_t list, unsigned m)
{
	for (unsigned w = 1; w < m; w *= 2) {
		uint32_t rest = list, head = NONE, tail = NONE, a, b, t;

		while (rest != NONE) {
			a = key_cut(doc, &rest, w);
			b = key_cut(doc, &rest, w);
			a = key_merge(doc, a, b, &t);
			if (tail == NONE)
				head = a;
			else
				LINK(doc, tail) = a;
			tail = t;
		}
		LINK(doc, tail) = NONE;
		list = head;
	}
	return list;
}

uint32_t te_json_dup_key(struct te_json_doc *doc, uint32_t obj)
{
	uint32_t list = NONE, *link = &list, d = NONE, k, next;

	TE_JSON_FOREACH_MEMBER(doc, obj, key, v) {
		*link = key;
		link = &LINK(doc, key);
	}
	*link = NONE;
	list = key_sort(doc, list, doc->tok[obj].size);
	for (k = list; k != NONE; k = next) {
		next = LINK(doc, k);
		/* sorted stably: the later of two equal keys comes second */
		if (next != NONE && next < d && !key_cmp(doc, k, next))
			d = next;
		LINK(doc, k) = 0;
	}
	return d;
}
