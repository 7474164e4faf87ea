/* The first-boot side of lib/download.h: the config URL, the report POST, and pinned artifacts
 * written under the root (fb_download). */
#include "fb-fetch.h"
#include "download.h"
#include "firstboot.h"
#include "hash-file.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

static const struct download_opts small = { .user_agent = FB_NAME "/" PMOVES_VERSION };

int fb_fetch(const char *url, size_t max, char **ret_buf, size_t *ret_len, char **ret_error)
{
	return http_get(url, max, &small, ret_buf, ret_len, ret_error);
}

int fb_post_json(const char *url, const char *body, unsigned attempts, char **ret_error)
{
	struct download_opts o = small;
	o.attempts = attempts;
	return http_post_json(url, body, &o, ret_error);
}

bool fb_download_url_ok(const char *url)
{
	return url_check(url, URL_HTTPS_OR_LOCAL, NULL) == 0;
}

int fb_file_sha256_is(const char *path, const char *sha256)
{
	/* O_NONBLOCK: the open of a FIFO there must not wait for a writer (it is no such file). */
	_cleanup_close_ int fd = fb_open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
	if (fd < 0)
		return fd == -ENOENT || fd == -ELOOP || fd == -ENOTDIR ? 0 : fd;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	char hex[65];
	int r = sha256_fd(fd, hex);
	if (r < 0)
		return r;
	return STREQ(hex, sha256);
}

int fb_download(const char *url, const char *path, const char *sha256, const struct download_opts *opts,
		char **ret_error)
{
	if (!path || path[0] != '/' || strlen(path) >= PATH_MAX)
		return -EINVAL;
	int r = url_check(url, URL_HTTPS_OR_LOCAL, ret_error);
	if (r < 0)
		return r;
	r = fb_file_sha256_is(path, sha256);
	if (r != 0)
		return r < 0 ? r : 0;
	/* PATH.part and the rename to PATH happen in PATH's directory opened inside the root:
	 * a symlink in the tree cannot send the download out of it. */
	_cleanup_free_ char *dir = strdup(path), *part = fb_strdupf("%s.part", path), *part_base = NULL;
	if (!dir || !part)
		return -ENOMEM;
	char *slash = strrchr(dir, '/');
	const char *base = path + (slash - dir) + 1;
	if (!*base || STREQ(base, ".") || STREQ(base, ".."))
		return -EINVAL;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (!(part_base = fb_strdupf("%s.part", base)))
		return -ENOMEM;
	_cleanup_close_ int dfd = fb_open_dir(dir, true);
	_cleanup_close_ int fd = dfd < 0 ? dfd : openat(dfd, part_base, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = dfd < 0 ? dfd : -errno;
		if (ret_error)
			*ret_error = fb_strdupf("cannot open '%s': %s", part, strerror(-r));
		return r;
	}
	struct download_opts o = opts ? *opts : (struct download_opts){ 0 };
	o.user_agent = FB_NAME "/" PMOVES_VERSION;
	r = download_fd(fd, url, sha256, &o, ret_error);
	if (r == -EBADMSG || r == -EFBIG)
		unlinkat(dfd, part_base, 0);
	if (r < 0)
		return r;
	if (fsync(fd) < 0 || fchmod(fd, 0644) < 0 || renameat(dfd, part_base, dfd, base) < 0)
		return -errno;
	fsync(dfd);
	return 0;
}
