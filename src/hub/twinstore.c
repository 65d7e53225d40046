/* Module twins in the store (router.h): each port's twin is the key-value
 * entry "twin/NAME" (store/store.h), read when the port's twin is first
 * made and written after every change.
 *
 * Writes are batched once per loop turn (the router's flush hook): a
 * change marks the port's twin dirty and the router's twins_dirty; the
 * hook encodes each dirty twin and puts it. A put the store cannot take
 * now (its pending buffer is full) leaves the twin dirty for the next
 * turn — the store's eventfd makes one when the writer has caught up. A
 * port that goes away (its module removed, the daemon stopping) writes its
 * twin at once, waiting for the writer if it must. The entry of a removed
 * module stays: as in IoT Hub, a module twin lives as long as its
 * identity, and a module added again under the same name finds it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/log.h"
#include "router.h"

static void twin_key(const struct te_port *p, char *key, size_t cap)
{
	snprintf(key, cap, "twin/%s", p->name);
}

void te_port_twin_dirty(struct te_port *p)
{
	p->twin_dirty = true;
	p->rt->twins_dirty = true;
}

/* Write p's twin if it is dirty. -EAGAIN: the store's buffer is full (it
 * stays dirty); with wait, the writer is waited for instead. */
int te_port_twin_store(struct te_port *p, bool wait)
{
	struct te_store *s = p->rt->store;
	char key[TE_STORE_KEY_MAX + 1];
	size_t len;
	void *blob;
	int r;

	if (!p->twin_dirty || !p->twin.desired || !s) {
		p->twin_dirty = false;
		return 0;
	}
	blob = malloc(TE_TWIN_BLOB_MAX);
	if (!blob)
		return -ENOMEM;
	twin_key(p, key, sizeof(key));
	r = te_twin_encode(&p->twin, blob, TE_TWIN_BLOB_MAX, &len);
	if (r == 0)
		r = te_store_kv_put(s, key, blob, len);
	if (r == -EAGAIN && wait) {
		te_store_sync(s);
		r = te_store_kv_put(s, key, blob, len);
	}
	free(blob);
	if (r == -EAGAIN || r == -ENOMEM)
		return r;
	if (r < 0)
		te_warn("hub", "module %s: cannot store its twin: %s", p->name, te_strerror(r));
	p->twin_dirty = false;
	return 0;
}

void te_router_twins_store(struct te_router *rt, bool wait)
{
	bool again = false;

	rt->twins_dirty = false;
	for (unsigned i = 0; i < rt->nports; i++)
		if (te_port_twin_store(rt->ports[i], wait) < 0)
			again = true;
	rt->twins_dirty = again;
}

/* The twin stored for p, if any: 0 (in *t), -ENOENT, or another error
 * (reported). */
static int twin_stored(struct te_port *p, struct te_twin *t)
{
	char key[TE_STORE_KEY_MAX + 1];
	void *blob;
	size_t len;
	int r;

	if (!p->rt->store)
		return -ENOENT;
	twin_key(p, key, sizeof(key));
	r = te_store_kv_get(p->rt->store, key, &blob, &len);
	if (r == 0) {
		r = te_twin_decode(t, blob, len);
		free(blob);
	}
	if (r == -TE_EMALFORMED)
		te_warn("hub", "module %s: its stored twin is damaged: starting from the deployment",
			p->name);
	else if (r < 0 && r != -ENOENT)
		te_warn("hub", "module %s: cannot read its stored twin (%s): starting from the "
			"deployment", p->name, te_strerror(r));
	return r;
}

int te_port_twin_keep(struct te_port *p)
{
	struct te_twin stored;

	if (p->twin.desired)
		return 0;
	if (twin_stored(p, &stored) == 0) {
		p->twin = stored;
		return 0;
	}
	return te_port_twin_load(p, NULL, 0);
}

int te_port_twin_load(struct te_port *p, const char *json, size_t n)
{
	struct te_twin fresh, stored;
	int r = te_twin_init(&fresh, json, n);

	if (r < 0)
		return r;
	if (twin_stored(p, &stored) < 0) {
		p->twin = fresh;
		te_port_twin_dirty(p);  /* its versions go on from here */
		return 0;
	}
	if (stored.mhash != fresh.mhash) {
		r = te_twin_set_desired(&stored, json, n);
		if (r > 0)
			te_info("hub", "module %s: the deployment's desired properties changed: "
				"desired version %lld", p->name, (long long)stored.dver);
		te_port_twin_dirty(p);
	}
	te_twin_free(&fresh);
	p->twin = stored;
	return 0;
}
