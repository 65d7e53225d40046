/* A tiny TAP producer for unit tests: one program per source module.
 *
 *   TAP_OK(cond, "name %d", x);     one test point
 *   TAP_EQ_INT(a, b, "name");       with both values printed on failure
 *   TAP_EQ_STR(a, b, "name");
 *   return tap_done();              prints the plan, exit status 1 on failure
 *
 * test/run-unit.sh counts "ok" / "not ok" lines across all programs. */
#ifndef TE_TAP_H
#define TE_TAP_H

#include <stdio.h>
#include <string.h>

static unsigned tap_n, tap_failed;

#define TAP_OK(cond, ...)                                                       \
	do {                                                                    \
		int _ok = !!(cond);                                             \
		tap_n++;                                                        \
		printf("%s %u - ", _ok ? "ok" : "not ok", tap_n);               \
		printf(__VA_ARGS__);                                            \
		printf("\n");                                                   \
		if (!_ok) {                                                     \
			tap_failed++;                                           \
			printf("#   failed at %s:%d: %s\n", __FILE__,            \
			       __LINE__, #cond);                                \
		}                                                               \
	} while (0)

#define TAP_EQ_INT(a, b, ...)                                                   \
	do {                                                                    \
		long long _a = (long long)(a), _b = (long long)(b);             \
		TAP_OK(_a == _b, __VA_ARGS__);                                  \
		if (_a != _b)                                                   \
			printf("#   got %lld, expected %lld\n", _a, _b);        \
	} while (0)

#define TAP_EQ_STR(a, b, ...)                                                   \
	do {                                                                    \
		const char *_a = (a), *_b = (b);                                \
		int _eq = _a && _b && strcmp(_a, _b) == 0;                      \
		TAP_OK(_eq, __VA_ARGS__);                                       \
		if (!_eq)                                                       \
			printf("#   got \"%s\"\n#   expected \"%s\"\n",          \
			       _a ? _a : "(null)", _b ? _b : "(null)");         \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%u\n", tap_n);
	if (tap_failed)
		printf("# %u of %u failed\n", tap_failed, tap_n);
	return tap_failed ? 1 : 0;
}

#endif
