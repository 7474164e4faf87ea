/* HTTP(S) with libcurl: the config URL, the status report, pinned artifacts. */
#ifndef PMOVES_FB_FETCH_H
#define PMOVES_FB_FETCH_H

#include <stdbool.h>
#include <stddef.h>

/* GET URL (https://, or http:// which the caller pins by checksum) into a NUL-terminated
 * buffer of at most MAX bytes, trying a few times with backoff. On failure *ret_error (may be
 * NULL) says why. SSL_CERT_FILE, when set, is the CA bundle. */
int fb_fetch(const char *url, size_t max, char **ret_buf, size_t *ret_len, char **ret_error);
/* POST BODY as application/json to an https:// URL: ATTEMPTS tries, 1 s, 2 s, 4 s... apart. */
int fb_post_json(const char *url, const char *body, unsigned attempts, char **ret_error);

/* ---- one pinned artifact (the artifacts step, and later tailnet, tunnel, rustdesk) ---- */

struct fb_download_opts {
	unsigned connect_timeout; /* seconds per connection; 0: 15 */
	unsigned timeout;         /* seconds per attempt, whole transfer; 0: 900 */
	unsigned attempts;        /* 0: 4; 1 s, 2 s, 4 s... apart */
	unsigned long long max_size; /* bytes; 0: 4 GiB */
};

/* An artifact URL: https://HOST..., or http:// to 127.0.0.1, localhost or [::1] only (local
 * test and mirror servers; the content is pinned by its SHA-256 either way). */
bool fb_download_url_ok(const char *url);

/* Make PATH (absolute as on the target, under the root) the file of URL whose SHA-256 is
 * SHA256 (64 lower-case hex digits). A file already at PATH with that hash is used as it is,
 * without the network (a baked artifact). Otherwise the body goes to PATH.part (kept between
 * attempts and runs: a later attempt resumes it with a Range request), is verified, and
 * renamed to PATH. Timeouts, retries with backoff on network errors, truncated bodies, 408,
 * 429 and 5xx; the proxy from the environment (https_proxy, no_proxy; loopback is never
 * proxied); SSL_CERT_FILE, when set, is the CA bundle. OPTS may be NULL.
 * Returns 0; -ENETUNREACH (no route, name lookup or connection failed), -ETIMEDOUT, -EAGAIN
 * (server errors, truncated bodies): try again later; -EBADMSG: the hashes differ (nothing is
 * left at PATH or PATH.part; the message names both); -EFBIG; -EIO (refused: 4xx, TLS); or
 * another -errno. *ret_error (may be NULL) says why, without the URL's user:password. */
int fb_download(const char *url, const char *path, const char *sha256, const struct fb_download_opts *opts,
		char **ret_error);
/* 1: PATH (under the root) is a regular file whose SHA-256 is SHA256; 0: not; -errno. */
int fb_file_sha256_is(const char *path, const char *sha256);

#endif
