/* The message view's system property names (msg.h), as routes spell them
 * after '$' and as edgeHub's routing system properties are named. */
#include <string.h>
#include <strings.h>

#include "msg.h"

static const char *const sysprop_names[TE_SYS_N] = {
	[TE_SYS_MESSAGE_ID] = "messageId",
	[TE_SYS_CORRELATION_ID] = "correlationId",
	[TE_SYS_CONTENT_TYPE] = "contentType",
	[TE_SYS_CONTENT_ENCODING] = "contentEncoding",
	[TE_SYS_CREATION_TIME_UTC] = "creationTimeUtc",
	[TE_SYS_CONNECTION_DEVICE_ID] = "connectionDeviceId",
	[TE_SYS_CONNECTION_MODULE_ID] = "connectionModuleId",
	[TE_SYS_OUTPUT_NAME] = "outputName",
	[TE_SYS_INPUT_NAME] = "inputName",
	[TE_SYS_USER_ID] = "userId",
};

/* Never NULL: "?" for a value outside the enum. */
const char *te_sysprop_name(enum te_sysprop p)
{
	return (unsigned)p < TE_SYS_N ? sysprop_names[p] : "?";
}

/* ASCII case-insensitive, whole name. */
int te_sysprop_from_name(const char *s, uint32_t n)
{
	for (int i = 0; i < TE_SYS_N; i++)
		if (strlen(sysprop_names[i]) == n &&
		    !strncasecmp(s, sysprop_names[i], n))
			return i;
	return -1;
}
