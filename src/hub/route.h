/* The route language (edgeHub compatible): compiled once, evaluated per
 * message without allocation.
 *
 *   [SELECT *] FROM <source> [WHERE <condition>] INTO <sink>
 *
 * Sources (written here with <*> for the star, which C comments cannot
 * hold after a slash): /messages/<*>, /messages/modules/{m}/<*>,
 * /messages/modules/{m}/outputs/<*>, /messages/modules/{m}/outputs/{o},
 * /twinChangeNotifications.
 * Sinks: $upstream, BrokeredEndpoint("/modules/{m}/inputs/{i}").
 * Keywords are case-insensitive.
 *
 * Conditions: application properties by bare name (their values are
 * strings: as_number(temp) > 30), system properties as $name or {$name},
 * $body.a.b (only for contentType application/json with contentEncoding
 * utf-8, as edgeHub), literals (numbers, 'single' or "double" quoted
 * strings, true, false, null, undefined), operators NOT, unary -, * / %,
 * + -, || (string concatenation), < <= > >=, = != <>, AND, OR, ?? (coalesce)
 * with edgeHub's precedence and three-valued logic, and the built-in
 * functions abs, exp, power, square, ceiling, floor, sign, sqrt, as_number,
 * is_bool, is_defined, is_null, is_number, is_string, concat, length,
 * lower, upper, substring, index_of, starts_with, ends_with, contains.
 * A route fires only when its condition is true (undefined does not).
 * Type errors that can be known at compile time are compile errors, with
 * the column (1-based, in the route text).
 *
 * A compiled route is a flat program plus a fixed scratch area sized at
 * compile time; te_route_eval uses only that (no allocation), so one route
 * must not be evaluated by two threads at once. */
#ifndef TE_ROUTE_H
#define TE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/manifest.h"
#include "msg.h"

enum te_route_source {
	TE_RSRC_ALL,           /* /messages/<*> : every message */
	TE_RSRC_MODULE,        /* /messages/modules/{m}/<*> and .../outputs/<*> */
	TE_RSRC_MODULE_OUTPUT, /* /messages/modules/{m}/outputs/{o} */
	TE_RSRC_TWIN_CHANGES,  /* /twinChangeNotifications */
};

enum te_route_sink { TE_RSINK_UPSTREAM, TE_RSINK_MODULE };

enum te_tri { TE_FALSE = 0, TE_TRUE = 1, TE_UNDEFINED = 2 };

struct te_route {
	enum te_route_source source;
	char src_module[TE_MODULE_NAME_MAX + 1];
	char src_output[128];
	enum te_route_sink sink;
	char sink_module[TE_MODULE_NAME_MAX + 1];
	char sink_input[128];
	bool has_condition;
	struct te_route_prog *prog; /* compiled condition, NULL without WHERE */
};

/* Compile text. On error returns -TE_EINVALID and writes the message to
 * err (cap bytes) and its 1-based column to *col (0 if not applicable).
 * -ENOMEM on allocation failure. On success r->prog is owned by r. */
int te_route_compile(const char *text, struct te_route *r, char *err,
		     size_t cap, unsigned *col);

/* Does a message of this origin/module/output enter this route? */
bool te_route_source_matches(const struct te_route *r, const struct te_msg *m);

/* Evaluate the condition (TE_TRUE when there is none). */
enum te_tri te_route_eval(const struct te_route *r, const struct te_msg *m);

void te_route_free(struct te_route *r);

#endif
