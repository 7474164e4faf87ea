/* HTTP(S) through libcurl for both programs: downloads pinned by SHA-256 (resumed, capped,
 * verified as they come; into a file or streamed into a pipe), small GETs and POSTs, and the
 * rules URLs must follow. Library code: nothing is printed; what went wrong comes back in
 * *ret_error, which never holds a URL's user:password or query. Loopback is never proxied;
 * SSL_CERT_FILE, when set, is the CA bundle. */
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
	bool any_http;                /* downloads: http:// to any host (URL_PINNED), not only
	                               * loopback: a LAN boot server, the content pinned anyway */
	bool (*cancelled)(void);      /* may be NULL; true stops the work: -EINTR */
	/* http_request only: more request headers ("Name: value"), NULL-terminated; may be NULL.
	 * They may hold a secret (Authorization): never printed. */
	const char *const *headers;
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
/* The body of URL into FD, written in order (a pipe, a socket: FD need not seek), hashed as it
 * comes; the URL rule, timeouts, attempts with backoff, max_size, any_http, cancelled and
 * retrying as download_fd. FD gets the content from its first byte and is never read,
 * truncated or sought. An attempt that fails after some bytes went out resumes with a Range
 * request from the count written; what was written cannot be taken back, so where download_fd
 * would start over from byte 0, download_stream fails instead.
 * The pin is checked only at the end, when the reader has had every byte already: it must not
 * act on the data as trusted until download_stream returned 0. A reader that closes its end
 * makes the write fail: the caller ignores SIGPIPE (else the signal kills it) and gets -EPIPE.
 * Returns 0: FD got exactly the pinned content; -ENETUNREACH, -ETIMEDOUT, -EAGAIN: try later,
 * as download_fd, but FD may have got the start of the content and a new call begins again
 * at byte 0 (for a new reader); -EBADMSG: the content came whole and is not the pinned one
 * (the message names both hashes); -EIO: refused (4xx, TLS), or some bytes went out and the
 * server does not resume, which a stream cannot start over from; -EFBIG: larger than max_size
 * (FD got at most max_size bytes of it); -EINVAL: a URL the rule refuses; -EINTR; a write's
 * -errno ("cannot write the download of"; -EPIPE: the reader has gone). */
int download_stream(int fd, const char *url, const char *sha256, const struct download_opts *o, char **ret_error);

/* GET URL (the caller checks it: URL_PINNED at least) into a NUL-terminated buffer of at most
 * MAX bytes. -EFBIG past MAX, -EIO otherwise. O may be NULL. */
int http_get(const char *url, size_t max, const struct download_opts *o, char **ret_buf, size_t *ret_len,
	     char **ret_error);
/* POST BODY as application/json to an https:// URL; -EIO when every attempt failed. */
int http_post_json(const char *url, const char *body, const struct download_opts *o, char **ret_error);
/* One request to a local JSON API (a service on this machine: the caller builds URL): METHOD
 * ("GET", "POST", "DELETE") with BODY as application/json (NULL: none), one attempt, no
 * redirects. The response's body (at most MAX bytes, NUL-terminated) and its HTTP status,
 * whatever it is: 4xx and 5xx are answers too. -ETIMEDOUT, -ECONNREFUSED (nothing answers),
 * -EFBIG past MAX, -EIO (another transport error); *ret_error (may be NULL) says why. */
int http_request(const char *method, const char *url, const char *body, size_t max, const struct download_opts *o,
		 long *ret_status, char **ret_buf, size_t *ret_len, char **ret_error);

#endif
