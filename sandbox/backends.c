/* The VMMs a sandbox runs under: one file each, one line here. */
#include <fcntl.h>

#include "sbx.h"
#include "util.h"

/* "auto" takes the first that can run here: Firecracker where KVM works and it is installed. */
static const struct sbx_backend *const backends[] = {
	&sbx_backend_firecracker,
	&sbx_backend_qemu,
};

const struct sbx_backend *sbx_backend_at(size_t i)
{
	return i < ARRAY_SIZE(backends) ? backends[i] : NULL;
}

const struct sbx_backend *sbx_backend_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(backends); i++)
		if (STREQ(backends[i]->name, name))
			return backends[i];
	return NULL;
}

/* The config's backend, or with "auto" the first one that can run here, in the table's order. */
const struct sbx_backend *sbx_backend_pick(const struct sbx_config *cfg, const char **ret_why)
{
	const char *why = "no backend";
	for (size_t i = 0; i < ARRAY_SIZE(backends); i++) {
		if (!STREQ(cfg->backend, "auto") && !STREQ(cfg->backend, backends[i]->name))
			continue;
		why = backends[i]->unusable(cfg);
		if (!why)
			return backends[i];
	}
	*ret_why = why;
	return NULL;
}
