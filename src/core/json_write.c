/* JSON writer into caller buffers; see json.h. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base64.h"
#include "err.h"
#include "json.h"
#include "json_int.h"

#define JW_MAX_DEPTH 64

void te_jw_init(struct te_jw *w, char *buf, size_t cap)
{
	*w = (struct te_jw){ .buf = buf, .cap = cap };
	if (cap)
		buf[0] = 0;
}

static void jw_misuse(struct te_jw *w)
{
	if (!w->err)
		w->err = -TE_EINVALID;
}

/* All or nothing; always leaves room for the NUL (len < cap). */
static void jw_put(struct te_jw *w, const void *s, size_t n)
{
	if (w->err)
		return;
	if (w->cap - w->len <= n) {
		w->err = -TE_ENOSPACE;
		return;
	}
	if (n)
		memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static uint64_t jw_bit(const struct te_jw *w)
{
	return 1ull << (w->depth - 1);
}

/* Position for a value: a comma in arrays, a pending key in objects, and
 * only one value at the root. */
static bool jw_value(struct te_jw *w)
{
	if (w->err)
		return false;
	if (!w->depth) {
		if (w->len)
			jw_misuse(w);
	} else if (w->is_obj & jw_bit(w)) {
		if (!w->after_key)
			jw_misuse(w);
		w->after_key = false;
	} else {
		if (w->comma & jw_bit(w))
			jw_put(w, ",", 1);
		w->comma |= jw_bit(w);
	}
	return !w->err;
}

static void jw_open(struct te_jw *w, char c, bool obj)
{
	if (!w->err && w->depth >= JW_MAX_DEPTH)
		jw_misuse(w);
	if (!jw_value(w))
		return;
	jw_put(w, &c, 1);
	if (w->err)
		return;
	w->depth++;
	w->comma &= ~jw_bit(w);
	w->is_obj = obj ? w->is_obj | jw_bit(w) : w->is_obj & ~jw_bit(w);
}

static void jw_close(struct te_jw *w, char c, bool obj)
{
	if (w->err)
		return;
	if (!w->depth || w->after_key || !(w->is_obj & jw_bit(w)) != !obj) {
		jw_misuse(w);
		return;
	}
	jw_put(w, &c, 1);
	if (!w->err)
		w->depth--;
}

void te_jw_obj_open(struct te_jw *w) { jw_open(w, '{', true); }
void te_jw_obj_close(struct te_jw *w) { jw_close(w, '}', true); }
void te_jw_arr_open(struct te_jw *w) { jw_open(w, '[', false); }
void te_jw_arr_close(struct te_jw *w) { jw_close(w, ']', false); }

/* Bytes written as they are: printable ASCII but " and \, and valid UTF-8
 * sequences. 0 for a byte that needs an escape or a replacement. */
static unsigned jw_plain(const unsigned char *s, size_t n)
{
	if (*s >= 0x80)
		return te_json_utf8_len(s, n);
	return *s >= 0x20 && *s != 0x7f && *s != '"' && *s != '\\';
}

static void jw_special(struct te_jw *w, unsigned char c)
{
	static const char from[] = "\"\\\b\f\n\r\t", to[] = "\"\\bfnrt";
	const char *p = c ? strchr(from, c) : NULL;
	char b[8];

	if (c >= 0x80) {
		jw_put(w, "\xef\xbf\xbd", 3);
	} else if (p) {
		b[0] = '\\';
		b[1] = to[p - from];
		jw_put(w, b, 2);
	} else {
		snprintf(b, sizeof(b), "\\u%04x", c);
		jw_put(w, b, 6);
	}
}

static void jw_string(struct te_jw *w, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, j;
	unsigned k;

	jw_put(w, "\"", 1);
	while (i < n && !w->err) {
		for (j = i; j < n && (k = jw_plain(s + j, n - j)); j += k)
			;
		jw_put(w, s + i, j - i);
		if (j == n)
			break;
		jw_special(w, s[j]);
		i = j + 1;
	}
	jw_put(w, "\"", 1);
}

/* Position for a key (given: the caller has one): inside an object, with
 * no key pending; writes the comma. */
static bool jw_key(struct te_jw *w, bool given)
{
	if (w->err)
		return false;
	if (!given || !w->depth || !(w->is_obj & jw_bit(w)) || w->after_key) {
		jw_misuse(w);
		return false;
	}
	if (w->comma & jw_bit(w))
		jw_put(w, ",", 1);
	w->comma |= jw_bit(w);
	w->after_key = true;
	return !w->err;
}

void te_jw_keyn(struct te_jw *w, const char *key, size_t n)
{
	if (!jw_key(w, key != NULL))
		return;
	jw_string(w, key, n);
	jw_put(w, ":", 1);
}

void te_jw_key(struct te_jw *w, const char *key)
{
	te_jw_keyn(w, key, key ? strlen(key) : 0);
}

void te_jw_key_raw(struct te_jw *w, const char *json, size_t n)
{
	if (!jw_key(w, json != NULL))
		return;
	jw_put(w, json, n);
	jw_put(w, ":", 1);
}

void te_jw_strn(struct te_jw *w, const char *s, size_t n)
{
	if (jw_value(w))
		jw_string(w, s, n);
}

void te_jw_str(struct te_jw *w, const char *s)
{
	if (!s)
		te_jw_null(w);
	else
		te_jw_strn(w, s, strlen(s));
}

void te_jw_raw(struct te_jw *w, const char *json, size_t n)
{
	if (jw_value(w))
		jw_put(w, json, n);
}

/* Encoded straight into the buffer: all or nothing, as jw_put. */
void te_jw_base64(struct te_jw *w, const void *data, size_t n)
{
	size_t len = te_base64_len(n);

	if (!jw_value(w))
		return;
	if (w->cap - w->len <= len + 2) {
		w->err = -TE_ENOSPACE;
		return;
	}
	w->buf[w->len] = '"';
	te_base64_encode(data, n, w->buf + w->len + 1, len, NULL);
	w->buf[w->len + 1 + len] = '"';
	w->len += len + 2;
}

void te_jw_int(struct te_jw *w, int64_t v)
{
	char b[24];

	te_jw_raw(w, b, (size_t)snprintf(b, sizeof(b), "%" PRId64, v));
}

void te_jw_uint(struct te_jw *w, uint64_t v)
{
	char b[24];

	te_jw_raw(w, b, (size_t)snprintf(b, sizeof(b), "%" PRIu64, v));
}

void te_jw_double(struct te_jw *w, double v)
{
	char b[32];

	if (!isfinite(v))
		te_jw_null(w);
	else
		te_jw_raw(w, b, (size_t)snprintf(b, sizeof(b), "%.17g", v));
}

void te_jw_bool(struct te_jw *w, bool v)
{
	te_jw_raw(w, v ? "true" : "false", v ? 4 : 5);
}

void te_jw_null(struct te_jw *w)
{
	te_jw_raw(w, "null", 4);
}

void te_jw_kstr(struct te_jw *w, const char *key, const char *s)
{
	te_jw_key(w, key);
	te_jw_str(w, s);
}

void te_jw_kint(struct te_jw *w, const char *key, int64_t v)
{
	te_jw_key(w, key);
	te_jw_int(w, v);
}

void te_jw_kbool(struct te_jw *w, const char *key, bool v)
{
	te_jw_key(w, key);
	te_jw_bool(w, v);
}

int te_jw_finish(struct te_jw *w)
{
	if (!w->err && (w->depth || w->after_key))
		w->err = -TE_EINVALID;
	if (w->cap)
		w->buf[w->len] = 0;
	else if (!w->err)
		w->err = -TE_ENOSPACE;
	return w->err;
}
