#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "jvalue.h"

int te_jv_str(const struct te_json_doc *doc, unsigned t, const char *what,
	      char *buf, size_t cap, bool allow_empty, struct te_diag *diag)
{
	size_t len = 0;
	int r = te_json_str(doc, t, buf, cap, &len);

	if (r == -TE_ENOSPACE) {
		te_json_error(doc, diag, t, "%s is too long (at most %zu bytes)",
			      what, cap - 1);
	} else if (r == -TE_EINVALID) {
		te_json_error(doc, diag, t, "%s must not contain \\u0000", what);
	} else if (r < 0) {
		te_json_error(doc, diag, t, "%s must be a string", what);
	} else if (len == 0 && !allow_empty) {
		te_json_error(doc, diag, t, "%s must not be empty", what);
		r = -TE_EINVALID;
	}
	if (r < 0) {
		buf[0] = '\0';
		return -TE_EINVALID;
	}
	return 0;
}

int te_jv_int(const struct te_json_doc *doc, unsigned t, const char *what,
	      int64_t min, int64_t max, int64_t *out, struct te_diag *diag)
{
	int64_t v;

	if (te_json_int(doc, t, &v) < 0 || v < min || v > max) {
		te_json_error(doc, diag, t,
			      "%s must be an integer from %" PRId64 " to %" PRId64,
			      what, min, max);
		return -TE_EINVALID;
	}
	*out = v;
	return 0;
}

int te_jv_bool(const struct te_json_doc *doc, unsigned t, const char *what,
	       bool *out, struct te_diag *diag)
{
	if (te_json_bool(doc, t, out) < 0) {
		te_json_error(doc, diag, t, "%s must be true or false", what);
		return -TE_EINVALID;
	}
	return 0;
}

int te_jv_enum(const struct te_json_doc *doc, unsigned t, const char *what,
	       const char *const *names, unsigned n, unsigned *out,
	       struct te_diag *diag)
{
	char list[256];
	size_t len = 0;

	for (unsigned i = 0; i < n; i++) {
		if (te_json_streq(doc, t, names[i])) {
			*out = i;
			return 0;
		}
	}
	list[0] = '\0';
	for (unsigned i = 0; i < n && len < sizeof(list); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
					i ? ", " : "", names[i]);
	te_json_error(doc, diag, t, "%s must be one of %s", what, list);
	return -TE_EINVALID;
}
