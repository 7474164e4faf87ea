/* HTTP(S) for pmoves-firstboot: the config URL, the status report, pinned artifacts. The
 * transfers are lib/download.h's; this adds paths under the root. */
#ifndef PMOVES_FB_FETCH_H
#define PMOVES_FB_FETCH_H

#include "download.h"

#include <stdbool.h>
#include <stddef.h>

/* GET URL (https://, or http:// which the caller pins by checksum) into a NUL-terminated
 * buffer of at most MAX bytes, trying a few times with backoff. On failure *ret_error (may be
 * NULL) says why, naming the URL without its user:password or query. */
int fb_fetch(const char *url, size_t max, char **ret_buf, size_t *ret_len, char **ret_error);
/* POST BODY as application/json to an https:// URL: ATTEMPTS tries, 1 s, 2 s, 4 s... apart. */
int fb_post_json(const char *url, const char *body, unsigned attempts, char **ret_error);

/* An artifact URL: https://HOST..., or http:// to a loopback host only (local test and mirror
 * servers; the content is pinned by its SHA-256 either way): url_check's URL_HTTPS_OR_LOCAL. */
bool fb_download_url_ok(const char *url);

/* Make PATH (absolute as on the target, under the root) the file of URL whose SHA-256 is
 * SHA256 (64 lower-case hex digits). A file already at PATH with that hash is used as it is,
 * without the network (a baked artifact). Otherwise the body goes to PATH.part (kept between
 * attempts and runs: a later attempt resumes it), is verified, and renamed to PATH. OPTS
 * (may be NULL): timeouts, attempts and the size cap, as download_fd takes them.
 * Returns 0, or download_fd's errors: -ENETUNREACH, -ETIMEDOUT, -EAGAIN (try again later),
 * -EBADMSG (nothing is left at PATH or PATH.part), -EFBIG, -EIO, -EINVAL, -errno; *ret_error
 * (may be NULL) says why. */
int fb_download(const char *url, const char *path, const char *sha256, const struct download_opts *opts,
		char **ret_error);
/* 1: PATH (under the root) is a regular file whose SHA-256 is SHA256; 0: not; -errno. */
int fb_file_sha256_is(const char *path, const char *sha256);

#endif
