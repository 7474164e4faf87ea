/* Downloads pinned by SHA-256 for the build (fetch.h). */
#include "fetch.h"
#include "build.h"
#include "download.h"
#include "log.h"
#include "util.h"

#include <fcntl.h>
#include <sys/stat.h>

/* A rootfs tarball or an artifact: large, but not without end. */
#define FETCH_MAX_SIZE (UINT64_C(64) << 30)

static void retrying(void *ctx, const char *why)
{
	log_info("%s: %s, trying again", (const char *)ctx, why);
}

int fetch_pinned(const char *what, const char *url, const char *want, const char *dest, uint64_t *ret_bytes)
{
	_cleanup_free_ char *tmp = NULL, *err = NULL;
	_cleanup_close_ int fd = open_temp_beside(dest, 0644, &tmp);
	if (fd < 0)
		return log_errno(fd, "cannot create a file beside '%s'", dest);
	struct download_opts o = {
		.max_size = FETCH_MAX_SIZE,
		.user_agent = "pmoves-image/" PMOVES_VERSION,
		.cancelled = build_interrupted,
		.retrying = retrying,
		.ctx = (void *)what,
	};
	int r = download_fd(fd, url, want, &o, &err);
	struct stat st;
	if (r == 0 && (fsync(fd) < 0 || fstat(fd, &st) < 0))
		r = log_errno(-errno, "cannot write '%s'", tmp);
	else if (r == -EINTR)
		; /* the build says it was interrupted */
	else if (r < 0)
		log_error("%s: %s", what, err ? err : strerror(-r));
	if (r == 0 && rename(tmp, dest) < 0)
		r = log_errno(-errno, "cannot rename '%s'", tmp);
	if (r < 0) {
		unlink(tmp);
		return r == -EBADMSG || r == -EINTR || r == -EFBIG ? r : r == -ENOMEM ? r : -EIO;
	}
	*ret_bytes = (uint64_t)st.st_size;
	return 0;
}
