/* The first-boot side of lib/download.h: the config URL, the report POST, and pinned artifacts
 * written under the root (fb_download). */
#include "fb-fetch.h"
#include "download.h"
#include "firstboot.h"
#include "hash-file.h"
#include "util.h"

#include <fcntl.h>
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

static int dl_finish(const char *part, const char *path, int fd)
{
	if (fsync(fd) < 0)
		return -errno;
	_cleanup_free_ char *hp = fb_path(part), *hpath = fb_path(path);
	if (!hp || !hpath)
		return -ENOMEM;
	if (fchmod(fd, 0644) < 0 || rename(hp, hpath) < 0)
		return -errno;
	char *slash = strrchr(hpath, '/');
	*slash = '\0';
	_cleanup_close_ int dfd = open(*hpath ? hpath : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
	return 0;
}

static int open_part(const char *part)
{
	_cleanup_free_ char *hp = fb_path(part);
	if (!hp)
		return -ENOMEM;
	char *slash = strrchr(hp, '/');
	*slash = '\0';
	int r = mkdir_p(*hp ? hp : "/", 0755);
	if (r < 0)
		return r;
	return fb_open(part, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
}

int fb_download(const char *url, const char *path, const char *sha256, const struct download_opts *opts,
		char **ret_error)
{
	if (!path || path[0] != '/')
		return -EINVAL;
	int r = url_check(url, URL_HTTPS_OR_LOCAL, ret_error);
	if (r < 0)
		return r;
	r = fb_file_sha256_is(path, sha256);
	if (r != 0)
		return r < 0 ? r : 0;
	_cleanup_free_ char *part = fb_strdupf("%s.part", path);
	if (!part)
		return -ENOMEM;
	_cleanup_close_ int fd = open_part(part);
	if (fd < 0) {
		if (ret_error)
			*ret_error = fb_strdupf("cannot open '%s': %s", part, strerror(-fd));
		return fd;
	}
	struct download_opts o = opts ? *opts : (struct download_opts){ 0 };
	o.user_agent = FB_NAME "/" PMOVES_VERSION;
	r = download_fd(fd, url, sha256, &o, ret_error);
	if (r == 0)
		return dl_finish(part, path, fd);
	if (r == -EBADMSG || r == -EFBIG)
		fb_remove(part);
	return r;
}
