/* A message as the hub sees it: a view over bytes it does not own (a record
 * copied out of a ring, a store entry, a test's literals). Decoding fills a
 * view after validating every length; the router and the route evaluator
 * then trust it. Strings are not NUL-terminated: use .n. */
#ifndef TE_MSG_H
#define TE_MSG_H

#include <stdbool.h>
#include <stdint.h>

#define TE_MSG_BODY_MAX (256u * 1024)  /* IoT Hub's message size limit */
#define TE_MSG_PROPS_MAX 64            /* application properties per message */

struct te_str {
	const char *p;  /* NULL = absent */
	uint32_t n;
};

struct te_prop {
	struct te_str key, val;
};

/* System properties, by the names edgeHub routes use ($messageId, ...). */
enum te_sysprop {
	TE_SYS_MESSAGE_ID,
	TE_SYS_CORRELATION_ID,
	TE_SYS_CONTENT_TYPE,
	TE_SYS_CONTENT_ENCODING,
	TE_SYS_CREATION_TIME_UTC,
	TE_SYS_CONNECTION_DEVICE_ID,
	TE_SYS_CONNECTION_MODULE_ID,
	TE_SYS_OUTPUT_NAME,
	TE_SYS_INPUT_NAME,
	TE_SYS_USER_ID,
	TE_SYS_N
};

/* Where a message comes from, for route sources. */
enum te_msg_origin {
	TE_ORIGIN_MODULE,       /* /messages/modules/{connectionModuleId}/outputs/{outputName} */
	TE_ORIGIN_DEVICE,       /* only the all-messages source: a leaf device or `tinyedge send` */
	TE_ORIGIN_TWIN_CHANGE,  /* /twinChangeNotifications */
};

struct te_msg {
	enum te_msg_origin origin;
	struct te_str sys[TE_SYS_N];
	const struct te_prop *props;  /* nprops entries */
	uint32_t nprops;
	const void *body;
	uint32_t bodylen;
};

/* Name of a system property as routes spell it, without '$'
 * ("messageId", "contentType", "connectionModuleId", ...), and back
 * (case-insensitive; -1 if unknown). */
const char *te_sysprop_name(enum te_sysprop p);
int te_sysprop_from_name(const char *s, uint32_t n);

#endif
