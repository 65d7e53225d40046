/* Error convention (docs/errors.md).
 *
 * Functions return 0 on success or a negative code: -errno for system errors,
 * or -TE_E* for our own, from one reserved range above any errno value.
 * Results go through out-parameters. te_strerror() names either kind. */
#ifndef TE_ERR_H
#define TE_ERR_H

enum {
	TE_EBASE = 4096,
	TE_EMALFORMED = TE_EBASE, /* input does not follow its grammar */
	TE_ENEEDMORE,             /* input is a valid prefix; feed more bytes */
	TE_ELIMIT,                /* input exceeds a configured limit */
	TE_EINVALID,              /* well-formed but invalid (reported through a diag) */
	TE_ENOSPACE,              /* caller's buffer is too small */
	TE_EUSAGE,                /* bad command line */
	TE_ETLS,                  /* TLS failure (the session says which) */
	TE_ELAST
};

/* Exit codes of every tinyedge command. */
enum { TE_EXIT_OK = 0, TE_EXIT_FAIL = 1, TE_EXIT_USAGE = 2 };

/* Message for a code; accepts err or -err. Never NULL; static storage. */
const char *te_strerror(int err);

#endif
