#include <string.h>

#include "err.h"

static const char *const te_errors[TE_ELAST - TE_EBASE] = {
	[TE_EMALFORMED - TE_EBASE] = "malformed input",
	[TE_ENEEDMORE - TE_EBASE] = "incomplete input",
	[TE_ELIMIT - TE_EBASE] = "limit exceeded",
	[TE_EINVALID - TE_EBASE] = "invalid input",
	[TE_ENOSPACE - TE_EBASE] = "buffer too small",
	[TE_EUSAGE - TE_EBASE] = "usage error",
	[TE_ETLS - TE_EBASE] = "TLS failure",
};

const char *te_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err >= TE_EBASE && err < TE_ELAST)
		return te_errors[err - TE_EBASE];
	if (err == 0)
		return "success";
	return strerror(err);
}
