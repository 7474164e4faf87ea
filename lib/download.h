/* HTTP(S) through libcurl for both programs: downloads pinned by SHA-256 (resumed, capped,
 * verified as they come), small GETs and POSTs, and the rules URLs must follow. Library code:
 * nothing is printed; what went wrong comes back in *ret_error, which never holds a URL's
 * user:password or query. Loopback is never proxied; SSL_CERT_FILE, when set, is the CA bundle. */
#ifndef PMOVES_DOWNLOAD_H
#define PMOVES_DOWNLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a URL may be. */
enum url_rule {
	URL_HTTPS,          /* https:// only */
	URL_HTTPS_OR_LOCAL, /* https://, or http:// to a loopback host (127.0.0.0/8, ::1, localhost) */
	URL_PINNED,         /* https:// or http:// to any host: the caller pins the content's hash */
};
/* 0 when URL parses (libcurl's URL parser: the host is what libcurl will connect to, whatever
 * userinfo says) and RULE allows it; else -EINVAL and in *ret_why (may be NULL) why. */
int url_check(const char *url, enum url_rule rule, char **ret_why);
/* URL as people see it: scheme, host, port and path, without user:password, query or
 * fragment (malloc'd; for an URL that does not parse, "(an invalid URL)"). */
char *url_shown(const char *url);
/* Does URL (libcurl's parser) carry a user or user:password before its host? */
bool url_has_userinfo(const char *url);

struct download_opts {
	unsigned connect_timeout;     /* seconds; 0: 15 */
	unsigned timeout;             /* seconds per attempt, the whole transfer; 0: 900 */
	unsigned attempts;            /* 0: 4, 1 s, 2 s, 4 s... apart */
	uint64_t max_size;            /* bytes; 0: 4 GiB */
	const char *user_agent;       /* NULL: "pmoves" */
	bool any_http;                /* download_fd: http:// to any host (URL_PINNED), not only
	                               * loopback: a LAN boot server, the content pinned anyway */
	bool (*cancelled)(void);      /* may be NULL; true stops the work: -EINTR */
	/* May be NULL: told why an attempt failed before the next one starts. */
	void (*retrying)(void *ctx, const char *why);
	void *ctx;
};

/* The body of URL (URL_HTTPS_OR_LOCAL; https follows https redirects, http none) into FD, a
 * regular file opened read-write that may hold the start of it from an earlier attempt
 * (hashed, then resumed with a Range request), until FD holds exactly the content whose
 * SHA-256 is SHA256 (64 lower-case hex digits). Timeouts, retries with backoff on network
 * errors, truncated bodies, 408, 429 and 5xx.
 * Returns 0; -ENETUNREACH (no route, name or connection), -ETIMEDOUT, -EAGAIN (server errors,
 * truncated bodies): try later, FD keeps what came for a resume; -EBADMSG: not the pinned
 * content (FD is emptied; the message names both hashes); -EFBIG: larger than max_size (FD
 * emptied); -EIO: refused (4xx, TLS); -EINVAL: a URL the rule refuses; -EINTR; -errno. */
int download_fd(int fd, const char *url, const char *sha256, const struct download_opts *o, char **ret_error);

/* GET URL (the caller checks it: URL_PINNED at least) into a NUL-terminated buffer of at most
 * MAX bytes. -EFBIG past MAX, -EIO otherwise. O may be NULL. */
int http_get(const char *url, size_t max, const struct download_opts *o, char **ret_buf, size_t *ret_len,
	     char **ret_error);
/* POST BODY as application/json to an https:// URL; -EIO when every attempt failed. */
int http_post_json(const char *url, const char *body, const struct download_opts *o, char **ret_error);

#endif
