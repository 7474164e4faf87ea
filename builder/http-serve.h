/* A small HTTP/1.1 static file server for PXE bundles (pmoves-image serve): GET and HEAD of the
 * regular files under one directory, single byte ranges, keep-alive, optional TLS. The parsers
 * are pure functions on buffers (tests/test-http-serve.c); http_serve() is the accept loop, one
 * detached thread per connection. Every number and path from the network is checked here. */
#ifndef PMOVES_HTTP_SERVE_H
#define PMOVES_HTTP_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define HTTP_HEAD_MAX 8192      /* request line and headers, with the blank line: 431 past it */
#define HTTP_MAX_CONNS 64       /* connections served at once: 503 past it */
#define HTTP_TIMEOUT_DEFAULT 30 /* seconds without a byte from (or to) a client: closed */
#define HTTP_LOG_PATH_MAX 200   /* bytes of a request target in a log line */

struct http_request {
	/* Pointers into the buffer given to http_parse_request, NUL-terminated there. */
	const char *method; /* a token: "GET", "HEAD", "POST", ... */
	const char *target; /* as sent: "/a%20b?x", or absolute-form "http://host/a" */
	const char *host;   /* the Host header's value, or NULL (HTTP/1.0 without one) */
	const char *range;  /* the Range header's value, or NULL (also when sent twice) */
	const char *if_range;
	int minor;          /* HTTP/1.MINOR: 0 or 1 (1.2 and later are served as 1.1) */
	bool get, head;     /* the method is GET, HEAD; neither: 405 */
	bool keep_alive;    /* 1.1 without "Connection: close", 1.0 with "Connection: keep-alive" */
	bool has_body;      /* Content-Length > 0 or Transfer-Encoding: not read, so closed after */
};

/* The end of a request head in the LEN bytes at BUF: the length of the head through its blank
 * line (CRLF CRLF, or bare LF LF as RFC 9112 lets a server accept); 0 when more bytes are
 * needed; -E2BIG when HTTP_HEAD_MAX bytes hold no end. */
long http_head_end(const char *buf, size_t len);

/* Parse the head at BUF (LEN bytes as http_head_end counted them; modified: lines are cut with
 * NULs) into *REQ. 0 when it is a request; else the status to answer with, then close:
 * 400 malformed (bad request line, bad header syntax, a NUL or control byte, obsolete line
 * folding, no Host in 1.1 or two, a bad Content-Length), 505 not HTTP/1.x. */
int http_parse_request(char *buf, size_t len, struct http_request *req);

/* The path of request target TARGET, for lookups: absolute-form's scheme and authority and the
 * query dropped, percent-decoded, "" and "." segments removed; "/a//b/./c/" -> "/a/b/c/" (a
 * trailing slash is kept: a directory, 404). Written to OUT (SIZE bytes; the result is never
 * longer than TARGET). 0, or the status: 400 for a bad escape, a NUL, a ".." segment, a target
 * that is not "/..." (or http(s)://...), 414 when OUT is too small. */
int http_target_path(const char *target, char *out, size_t size);

enum http_range_result {
	HTTP_RANGE_IGNORE, /* no Range, or one to ignore (another unit, a list, bad syntax): 200 */
	HTTP_RANGE_OK,     /* *START, *LEN: 206 */
	HTTP_RANGE_UNSAT,  /* no byte of a SIZE-byte file: 416 */
};
/* A Range header's value VALUE (NULL: none) against a file of SIZE bytes, as RFC 9110 14.1.2:
 * "bytes=A-B" (B past the end is the end), "bytes=A-", "bytes=-N" (the last N bytes). A list
 * of ranges, an A greater than B, another unit or bad syntax is ignored (a full 200 answers
 * it); a first byte at or past SIZE, "-0", or any range of an empty file is unsatisfiable.
 * Numbers too large for 64 bits count as "past any end". */
enum http_range_result http_parse_range(const char *value, uint64_t size, uint64_t *start, uint64_t *len);

/* "text/plain; charset=utf-8" for .ipxe .txt .conf .cfg, "application/json" for .json, ... and
 * "application/octet-stream" for everything else. */
const char *http_content_type(const char *path);
const char *http_status_text(int status);
/* "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate, no locale) into BUF. */
void http_date(int64_t t, char buf[static 32]);

/* "127.0.0.1:8080", "0.0.0.0:0" (port 0: the kernel picks one), "[::1]:8080", "[::]:80". Only
 * numeric addresses. 0 or -EINVAL. */
int http_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len);
/* "127.0.0.1:8080" or "[::1]:8080" for A into BUF. */
void http_format_addr(const struct sockaddr *a, char buf[static 64]);

/* Open PATH (as http_target_path wrote it: "/a/b") under the directory DIR_FD for reading:
 * openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, so neither ".." nor a symlink leads
 * outside DIR; on a kernel without openat2 (ENOSYS), component by component with O_NOFOLLOW
 * (every symlink refused). FORCE_FALLBACK takes the second way (for tests). The fd, or -errno
 * (-EISDIR for a directory, -EINVAL for what is not a regular file, -EXDEV or -ELOOP for a way
 * out). */
int http_open_beneath(int dir_fd, const char *path, bool force_fallback);

/* A dynamic route: the server asks it first, with the path as http_target_path made it. */
struct http_reply {
	int status;               /* the server sets 200 before asking */
	const char *content_type; /* NULL: "text/plain; charset=utf-8" */
	char *body;               /* malloc'd; the server frees it */
	bool wipe;                /* the body holds secrets: zeroed before it is freed */
	size_t len;
};
/* 1: answered in *RET; 0: not this route's path (the static files are looked up); < 0: error
 * (500). Called from connection threads at once: CTX must be safe for that. */
typedef int (*http_route_fn)(void *ctx, const char *path, const struct http_request *req, struct http_reply *ret);

struct http_server {
	int dir_fd;          /* the directory served (O_PATH or O_RDONLY | O_DIRECTORY) */
	int listen_fd;       /* bound and listening */
	int stop_fd;         /* readable when the server must stop (a signalfd) */
	void *tls;           /* SSL_CTX *, or NULL for plain HTTP */
	unsigned timeout;    /* seconds; 0: HTTP_TIMEOUT_DEFAULT */
	unsigned max_conns;  /* 0: HTTP_MAX_CONNS */
	bool quiet;          /* no line a request */
	http_route_fn route; /* or NULL */
	void *route_ctx;
};

/* Accept and serve until STOP_FD is readable; then close the connections still open and
 * return 0 once their threads have ended (or -ETIMEDOUT after a few seconds); -errno when the
 * listening socket fails. Logs "serve: ..." lines on stderr. */
int http_serve(struct http_server *s);

/* An SSL_CTX (returned as void *) with the certificate chain CERT and the key KEY (PEM), TLS
 * 1.2 and later. -ENOENT (a file missing), -EINVAL (not a certificate, not a key, or a key not
 * the certificate's), -ENOMEM; *WHY says which file and why (malloc'd). */
int http_tls_load(const char *cert, const char *key, void **ret, char **why);
void http_tls_free(void *tls);

#endif
