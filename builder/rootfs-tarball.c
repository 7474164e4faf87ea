/* Root filesystem from a tarball: a local file, or an https URL pinned by sha256 and cached. */
#include "fetch.h"
#include "hash-file.h"
#include "hash.h"
#include "log.h"
#include "rootfs.h"
#include "util.h"

#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>

static int tarball_get(struct build *b, char **ret_tar)
{
	const struct profile *p = b->p;
	struct stat st;
	if (p->rootfs.path) {
		if (stat(p->rootfs.path, &st) < 0)
			return log_errno(-errno, "rootfs tarball '%s'", p->rootfs.path);
		if (!S_ISREG(st.st_mode)) {
			log_error("rootfs tarball '%s' is not a regular file", p->rootfs.path);
			return -EINVAL;
		}
		if (p->rootfs.sha256) {
			char got[65];
			int r = sha256_file(p->rootfs.path, got);
			if (r < 0)
				return log_errno(r, "cannot read '%s'", p->rootfs.path);
			if (!STREQ(got, p->rootfs.sha256)) {
				log_error("rootfs tarball '%s' has sha256 %s, but the profile pins %s", p->rootfs.path, got,
					  p->rootfs.sha256);
				return -EBADMSG;
			}
		}
		char *copy = strdup(p->rootfs.path);
		if (!copy)
			return -ENOMEM;
		*ret_tar = copy;
		return 0;
	}

	_cleanup_free_ char *dir = NULL, *dest = NULL;
	int r = rootfs_cache_dir(&dir);
	if (r < 0)
		return log_errno(r, "cannot create the rootfs cache directory (set XDG_CACHE_HOME or HOME)");
	if (asprintf(&dest, "%s/download-%s.tar", dir, p->rootfs.sha256) < 0)
		return -ENOMEM;
	if (b->refresh || stat(dest, &st) < 0) {
		log_info("rootfs: downloading '%s'", p->rootfs.url);
		uint64_t bytes;
		r = fetch_pinned("rootfs", p->rootfs.url, p->rootfs.sha256, dest, &bytes);
		if (r == 0)
			log_info("rootfs: downloaded %" PRIu64 " bytes, sha256 verified", bytes);
		if (r < 0)
			return r;
	} else
		log_info("rootfs: using the cached download '%s'", dest);
	*ret_tar = TAKE_PTR(dest);
	return 0;
}

#define URL_MAX 1024

static int tarball_check(const struct profile *p, struct problems *pr)
{
	const char *path = p->rootfs.path, *url = p->rootfs.url, *sum = p->rootfs.sha256;
	if (path && (!*path || str_has_control(path) || strlen(path) >= PATH_MAX))
		return problem(pr, ".rootfs.path", "%s is not a usable path", Q(path));
	if (url && (!str_starts_with(url, "https://") || strlen(url) <= strlen("https://") ||
		    str_has_space_or_control(url) || strlen(url) > URL_MAX))
		return problem(pr, ".rootfs.url", "%s is not an https:// URL (plain http is refused: use https)", Q(url));
	if (sum) {
		bool ok = strlen(sum) == 64;
		for (const char *s = sum; ok && *s; s++)
			ok = (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f');
		if (!ok)
			return problem(pr, ".rootfs.sha256", "%s is not a SHA-256 (64 lowercase hex digits)", Q(sum));
	}
	if (!path == !url)
		return problem(pr, ".rootfs", "source \"tarball\" needs exactly one of \"path\" and \"url\"");
	if (url && !sum)
		return problem(pr, ".rootfs.url", "a tarball URL is refused without \"sha256\" (the checksum of the tarball)");
	/* The other mmdebstrap keys shape a tarball's making; these add software it would lack. */
	if (json_object_object_get_ex(p->rootfs.json, "npm", NULL))
		return problem(pr, ".rootfs.npm", "not used by source \"tarball\": npm trees are installed while mmdebstrap "
						  "builds the root filesystem");
	return 0;
}

/* The mmdebstrap keys a profile inherits are not used: a tarball is a whole root filesystem. */
const struct rootfs_source rootfs_tarball = {
	.name = "tarball",
	.defaults = NULL,
	.check = tarball_check,
	.get = tarball_get,
};
