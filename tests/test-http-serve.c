/* builder/http-serve.c: the request parser (good, malformed, oversize, HTTP/1.0), the Range
 * parser (every form, 64-bit overflow, A > B, past the end, -0), request targets to paths
 * (percent-decoding, "..", "%2e%2e", "%00", "//", absolute-form), the file lookup under a
 * directory (symlinks out refused, with openat2 and with its O_NOFOLLOW fallback), --listen
 * addresses; then the server itself on 127.0.0.1 in this process: a route answering before
 * the files, pipelined requests, an oversize head (431), HTTP/1.0, the stop. */
#include "http-serve.h"
#include "tap.h"
#include "util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* ---- request heads ---- */

static char head_buf[HTTP_HEAD_MAX + 64];

/* Parse TEXT as a whole head; the status, *REQ pointing into head_buf. */
static int parse(const char *text, struct http_request *req)
{
	size_t len = strlen(text);
	memcpy(head_buf, text, len);
	return http_parse_request(head_buf, len, req);
}

static void bad(const char *text, int want, const char *what)
{
	struct http_request rq;
	int r = parse(text, &rq);
	if (!tap_ok(r == want, "refused with %d: %s", want, what))
		tap_diag("got %d", r);
}

static void test_heads(void)
{
	const char *get = "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	tap_is_int(http_head_end(get, strlen(get)), strlen(get), "head end: a whole head");
	char two[256];
	snprintf(two, sizeof(two), "%sGET /b HTTP/1.1\r\n", get);
	tap_is_int(http_head_end(two, strlen(two)), strlen(get), "head end: the first of two pipelined requests");
	tap_is_int(http_head_end(get, strlen(get) - 1), 0, "head end: one byte short, more needed");
	tap_is_int(http_head_end("GET / HTTP/1.0\n\n", 16), 16, "head end: bare LF lines");
	static char big[HTTP_HEAD_MAX + 16];
	memset(big, 'a', sizeof(big));
	tap_is_int(http_head_end(big, HTTP_HEAD_MAX - 1), 0, "head end: HTTP_HEAD_MAX - 1 bytes without an end: more");
	tap_is_int(http_head_end(big, HTTP_HEAD_MAX), -E2BIG, "head end: HTTP_HEAD_MAX bytes without an end: too big");
	/* a head of exactly HTTP_HEAD_MAX bytes is accepted, one byte more is not */
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	memcpy(big + HTTP_HEAD_MAX - 4, "\r\n\r\n", 4);
	tap_is_int(http_head_end(big, HTTP_HEAD_MAX + 16), HTTP_HEAD_MAX, "head end: exactly HTTP_HEAD_MAX bytes");
	memset(big + HTTP_HEAD_MAX - 4, 'a', 4);
	memcpy(big + HTTP_HEAD_MAX - 3, "\r\n\r\n", 4);
	tap_is_int(http_head_end(big, HTTP_HEAD_MAX + 16), -E2BIG, "head end: HTTP_HEAD_MAX + 1 bytes: too big");

	struct http_request rq;
	int r = parse(get, &rq);
	tap_ok(r == 0 && rq.get && !rq.head && rq.minor == 1 && rq.keep_alive && !rq.has_body && rq.target &&
		       STREQ(rq.target, "/a.txt") && STREQ(rq.method, "GET") && !rq.range,
	       "GET 1.1: method, target, keep-alive (r=%d)", r);
	r = parse("HEAD /x HTTP/1.1\r\nhost: x\r\nRange:  bytes=0-1 \t\r\nIf-Range: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n", &rq);
	tap_ok(r == 0 && rq.head && !rq.get && rq.range && STREQ(rq.range, "bytes=0-1") && rq.if_range &&
		       STREQ(rq.if_range, "Thu, 01 Jan 1970 00:00:00 GMT"),
	       "HEAD, header names in any case, values trimmed of OWS (r=%d, range '%s')", r, rq.range ? rq.range : "");
	r = parse("GET / HTTP/1.0\r\n\r\n", &rq);
	tap_ok(r == 0 && rq.minor == 0 && !rq.keep_alive, "HTTP/1.0 without Host: served, then closed (r=%d)", r);
	r = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &rq);
	tap_ok(r == 0 && rq.minor == 0 && rq.keep_alive, "HTTP/1.0 with Connection: keep-alive: kept (r=%d)", r);
	r = parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: TE, close\r\n\r\n", &rq);
	tap_ok(r == 0 && !rq.keep_alive, "1.1 with Connection: TE, close: closed (r=%d)", r);
	r = parse("GET / HTTP/1.1\nHost: x\n\n", &rq);
	tap_ok(r == 0 && rq.get && rq.keep_alive, "bare LF line ends (r=%d)", r);
	r = parse("GET / HTTP/1.2\r\nHost: x\r\n\r\n", &rq);
	tap_ok(r == 0 && rq.minor == 1, "HTTP/1.2 is served as 1.1 (r=%d minor=%d)", r, rq.minor);
	r = parse("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", &rq);
	tap_ok(r == 0 && !rq.get && !rq.head && STREQ(rq.method, "POST") && rq.has_body && !rq.keep_alive,
	       "POST with a body: parsed (405 later), closed after: its body is not read (r=%d)", r);
	r = parse("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", &rq);
	tap_ok(r == 0 && rq.has_body && !rq.keep_alive, "Transfer-Encoding: a body, closed after (r=%d)", r);
	r = parse("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", &rq);
	tap_ok(r == 0 && !rq.has_body && rq.keep_alive, "Content-Length: 0 twice: no body, kept (r=%d)", r);
	r = parse("GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nRange: bytes=5-6\r\n\r\n", &rq);
	tap_ok(r == 0 && !rq.range, "Range twice: ignored (r=%d)", r);

	bad("GET /\r\n\r\n", 400, "no version");
	bad("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "two spaces");
	bad("GET / http/1.1\r\nHost: x\r\n\r\n", 400, "the version in lower case");
	bad("GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400, "HTTP/1.10");
	bad("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400, "a space after the version");
	bad("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0");
	bad("GET / HTTP/1.1\r\n\r\n", 400, "1.1 without Host");
	bad("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, "two Hosts");
	bad("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "a space before the colon");
	bad("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 400, "obsolete line folding");
	bad("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01z\r\n\r\n", 400, "a control byte in a value");
	bad("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rz\r\n\r\n", 400, "a bare CR in a value");
	bad("GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400, "a header line without a colon");
	bad(" / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "an empty method");
	bad("G/T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "a method that is not a token");
	bad("GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "a target byte past ASCII");
	bad("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length -1");
	bad("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400,
	    "Content-Length past 64 bits");
	bad("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
	    "two different Content-Lengths");
	bad("GET / HTTP/1.1\r\nHost: x\r\n", 400, "no blank line");
	static const char nul[] = "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n";
	memcpy(head_buf, nul, sizeof(nul) - 1);
	r = http_parse_request(head_buf, sizeof(nul) - 1, &rq);
	tap_is_int(r, 400, "refused with 400: a NUL byte in the head");
}

/* ---- ranges ---- */

static void range(const char *v, uint64_t size, enum http_range_result want, uint64_t want_start,
		  uint64_t want_len)
{
	uint64_t start = 12345, len = 12345;
	enum http_range_result r = http_parse_range(v, size, &start, &len);
	static const char *names[] = { "ignored", "ok", "unsatisfiable" };
	bool good = r == want && (want != HTTP_RANGE_OK || (start == want_start && len == want_len));
	if (!tap_ok(good, "Range '%s' of %" PRIu64 " bytes: %s %" PRIu64 "+%" PRIu64, v ? v : "(none)", size,
		    names[want], want_start, want_len))
		tap_diag("got %s %" PRIu64 "+%" PRIu64, names[r], start, len);
}

static void test_ranges(void)
{
	range(NULL, 1000, HTTP_RANGE_IGNORE, 0, 0);
	range("bytes=0-499", 1000, HTTP_RANGE_OK, 0, 500);
	range("bytes=500-", 1000, HTTP_RANGE_OK, 500, 500);
	range("bytes=-100", 1000, HTTP_RANGE_OK, 900, 100);
	range("bytes=-2000", 1000, HTTP_RANGE_OK, 0, 1000);
	range("bytes=999-999", 1000, HTTP_RANGE_OK, 999, 1);
	range("bytes=10-99999", 1000, HTTP_RANGE_OK, 10, 990);
	range("BYTES= 1-2 ", 1000, HTTP_RANGE_OK, 1, 2);
	range("bytes=1000-", 1000, HTTP_RANGE_UNSAT, 0, 0);
	range("bytes=1000-2000", 1000, HTTP_RANGE_UNSAT, 0, 0);
	range("bytes=-0", 1000, HTTP_RANGE_UNSAT, 0, 0);
	range("bytes=0-0", 0, HTTP_RANGE_UNSAT, 0, 0);
	range("bytes=-5", 0, HTTP_RANGE_UNSAT, 0, 0);
	range("bytes=99999999999999999999-", 1000, HTTP_RANGE_UNSAT, 0, 0);
	range("bytes=18446744073709551615-18446744073709551615", 1000, HTTP_RANGE_UNSAT, 0, 0);
	range("bytes=0-99999999999999999999", 1000, HTTP_RANGE_OK, 0, 1000);
	/* 2^64 + 5, 2^64, 2^64 + 1: wrapped, they would be 5, 0 and 1 */
	range("bytes=18446744073709551621-", 1000, HTTP_RANGE_UNSAT, 0, 0);
	range("bytes=0-18446744073709551616", 1000, HTTP_RANGE_OK, 0, 1000);
	range("bytes=-18446744073709551617", 1000, HTTP_RANGE_OK, 0, 1000);
	range("bytes=-99999999999999999999", 1000, HTTP_RANGE_OK, 0, 1000);
	range("bytes=5-4", 1000, HTTP_RANGE_IGNORE, 0, 0);
	range("bytes=0-1,5-6", 1000, HTTP_RANGE_IGNORE, 0, 0);
	range("bytes=-", 1000, HTTP_RANGE_IGNORE, 0, 0);
	range("bytes=a-b", 1000, HTTP_RANGE_IGNORE, 0, 0);
	range("bytes=+1-2", 1000, HTTP_RANGE_IGNORE, 0, 0);
	range("bytes=1-2x", 1000, HTTP_RANGE_IGNORE, 0, 0);
	range("items=0-1", 1000, HTTP_RANGE_IGNORE, 0, 0);
}

/* ---- targets ---- */

static void path(const char *target, int want, const char *want_path)
{
	char out[256];
	strcpy(out, "unchanged");
	int r = http_target_path(target, out, sizeof(out));
	bool good = r == want && (want || STREQ(out, want_path));
	if (!tap_ok(good, "target '%s': %d %s", target, want, want ? "" : want_path))
		tap_diag("got %d '%s'", r, out);
}

static void test_paths(void)
{
	path("/a/b.txt", 0, "/a/b.txt");
	path("/a%20b%2Fc", 0, "/a b/c");
	path("/a?x=../../etc/passwd", 0, "/a");
	path("/a#frag", 0, "/a");
	path("/a//b/./c/", 0, "/a/b/c/");
	path("//etc/passwd", 0, "/etc/passwd");
	path("/", 0, "/");
	path("/.", 0, "/");
	path("/a/.", 0, "/a/");
	path("/...", 0, "/...");
	path("/%252e%252e/x", 0, "/%2e%2e/x");
	path("http://host:8080/x/y?z", 0, "/x/y");
	path("HTTPS://host", 0, "/");
	path("/..", 400, NULL);
	path("/a/../b", 400, NULL);
	path("/%2e%2e/secret", 400, NULL);
	path("/%2E%2e", 400, NULL);
	path("/a%2f..%2fb", 400, NULL);
	path("/.%2e/x", 400, NULL);
	path("/a%00b", 400, NULL);
	path("/a%0", 400, NULL);
	path("/a%zz", 400, NULL);
	path("a/b", 400, NULL);
	path("*", 400, NULL);
	path("ftp://host/a", 400, NULL);
	char small[4];
	tap_is_int(http_target_path("/abcdef", small, sizeof(small)), 414, "a path longer than the buffer: 414");
}

/* ---- files under a directory ---- */

static int write_text(const char *path, const char *text)
{
	return write_file_atomic(path, text, strlen(text), 0644);
}

static void opens(int dir_fd, const char *p, bool fallback, int want_err, const char *want_text)
{
	int fd = http_open_beneath(dir_fd, p, fallback);
	char buf[64] = "";
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	bool good = want_text ? fd >= 0 && STREQ(buf, want_text) : fd < 0 && (!want_err || fd == want_err);
	if (!tap_ok(good, "%s '%s': %s", fallback ? "O_NOFOLLOW walk" : "openat2", p,
		    want_text ? want_text : want_err ? strerror(-want_err) : "refused"))
		tap_diag("got %d '%s'", fd, buf);
}

static void test_files(const char *top)
{
	_cleanup_free_ char *d = strdupf("%s/root", top), *sub = strdupf("%s/root/sub", top),
			    *secret = strdupf("%s/secret", top), *f = strdupf("%s/root/f.txt", top),
			    *g = strdupf("%s/root/sub/g.txt", top), *out = strdupf("%s/root/out", top),
			    *abs = strdupf("%s/root/abs", top), *in = strdupf("%s/root/in", top),
			    *up = strdupf("%s/root/up", top), *fifo = strdupf("%s/root/fifo", top);
	if (mkdir(d, 0755) < 0 || mkdir(sub, 0755) < 0 || write_text(secret, "secret") < 0 || write_text(f, "file") < 0 ||
	    write_text(g, "sub") < 0 || symlink("../secret", out) < 0 || symlink(secret, abs) < 0 ||
	    symlink("f.txt", in) < 0 || symlink("..", up) < 0 || mkfifo(fifo, 0644) < 0) {
		tap_diag("cannot make the tree: %s", strerror(errno));
		return;
	}
	int dir_fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int fb = 0; fb < 2; fb++) {
		opens(dir_fd, "/f.txt", fb, 0, "file");
		opens(dir_fd, "/sub/g.txt", fb, 0, "sub");
		opens(dir_fd, "/out", fb, 0, NULL);
		opens(dir_fd, "/abs", fb, 0, NULL);
		opens(dir_fd, "/up/secret", fb, 0, NULL);
		opens(dir_fd, "../secret", fb, 0, NULL);
		opens(dir_fd, "/sub", fb, -EISDIR, NULL);
		opens(dir_fd, "/", fb, -EISDIR, NULL);
		opens(dir_fd, "/f.txt/", fb, -EISDIR, NULL);
		opens(dir_fd, "/fifo", fb, -EINVAL, NULL);
		opens(dir_fd, "/none", fb, -ENOENT, NULL);
	}
	/* a symlink that stays inside: followed by openat2, refused by the fallback walk (which
	 * http_open_beneath also takes where openat2 is missing, as under valgrind 3.19) */
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_BENEATH };
	long probe = syscall(SYS_openat2, dir_fd, ".", &how, sizeof(how));
	if (probe < 0 && errno == ENOSYS)
		tap_skip("openat2 '/in': file", "no openat2 here (ENOSYS): the fallback walk was tested twice");
	else
		opens(dir_fd, "/in", false, 0, "file");
	if (probe >= 0)
		close((int)probe);
	opens(dir_fd, "/in", true, -ELOOP, NULL);
	close(dir_fd);
}

/* ---- addresses, types, dates ---- */

static void listen_ok(const char *s, const char *want)
{
	struct sockaddr_storage a;
	socklen_t len = 0;
	char shown[64] = "";
	int r = http_parse_listen(s, &a, &len);
	if (r == 0)
		http_format_addr((struct sockaddr *)&a, shown);
	if (!tap_ok(r == 0 && STREQ(shown, want) &&
			    len == (a.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)),
		    "--listen '%s' is %s", s, want))
		tap_diag("got %d '%s'", r, shown);
}

static void test_misc(void)
{
	listen_ok("127.0.0.1:0", "127.0.0.1:0");
	listen_ok("0.0.0.0:65535", "0.0.0.0:65535");
	listen_ok("[::1]:8080", "[::1]:8080");
	static const char *const bad_listen[] = { ":80", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
						  "localhost:80", "::1:80", "[::1]8080", "[::1", "[]:80",
						  "127.0.0.1:99999999999999999999", "1.2.3.4.5:80" };
	int refused = 0;
	for (size_t i = 0; i < ARRAY_SIZE(bad_listen); i++) {
		struct sockaddr_storage a;
		socklen_t len;
		if (http_parse_listen(bad_listen[i], &a, &len) == -EINVAL)
			refused++;
		else
			tap_diag("--listen '%s' was accepted", bad_listen[i]);
	}
	tap_is_int(refused, ARRAY_SIZE(bad_listen), "bad --listen values refused");

	tap_is_str(http_content_type("/boot.ipxe"), "text/plain; charset=utf-8", "content type of .ipxe");
	tap_is_str(http_content_type("/a/B.JSON"), "application/json", "content type of .JSON");
	tap_is_str(http_content_type("/vmlinuz"), "application/octet-stream", "content type without an extension");
	tap_is_str(http_content_type("/d.txt/root.squashfs"), "application/octet-stream",
		   "content type: the extension of the last segment");
	tap_is_str(http_content_type("/.txt"), "application/octet-stream", "content type: a dot file has no extension");
	char date[32];
	http_date(784111777, date);
	tap_is_str(date, "Sun, 06 Nov 1994 08:49:37 GMT", "IMF-fixdate (RFC 9110's example)");
}

/* ---- the server, in this process ---- */

static int route(void *ctx, const char *p, const struct http_request *req, struct http_reply *ret)
{
	(*(int *)ctx)++;
	if (!str_starts_with(p, "/mac/"))
		return 0;
	ret->body = strdupf("#!ipxe\necho %s %s\n", p + 5, req->host ? req->host : "-");
	ret->len = ret->body ? strlen(ret->body) : 0;
	return ret->body ? 1 : -ENOMEM;
}

static void *serve_thread(void *arg)
{
	struct http_server *s = arg;
	intptr_t r = http_serve(s);
	return (void *)r;
}

/* Send REQ (LEN bytes) to 127.0.0.1:PORT, read until the server closes (5 s at most). */
static char *exchange(unsigned port, const char *req, size_t len)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fd >= 0)
			close(fd);
		return strdup("(cannot connect)");
	}
	for (size_t done = 0; done < len;) {
		ssize_t n = send(fd, req + done, len - done, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	size_t size = 65536, got = 0;
	char *buf = malloc(size);
	for (;;) {
		ssize_t n = recv(fd, buf + got, size - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == size - 1)
			break;
	}
	buf[got] = '\0';
	close(fd);
	return buf;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_server(const char *top)
{
	_cleanup_free_ char *d = strdupf("%s/root", top);
	int listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), stop[2] = { -1, -1 };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int calls = 0;
	struct http_server s = { .dir_fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC), .listen_fd = listen_fd,
				 .quiet = true, .route = route, .route_ctx = &calls };
	pthread_t t;
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(listen_fd, 16) < 0 ||
	    getsockname(listen_fd, (struct sockaddr *)&a, &alen) < 0 || pipe2(stop, O_CLOEXEC) < 0 || s.dir_fd < 0 ||
	    (s.stop_fd = stop[0], pthread_create(&t, NULL, serve_thread, &s)) != 0) {
		tap_diag("cannot start the server: %s", strerror(errno));
		return;
	}
	unsigned port = ntohs(a.sin_port);

	const char *q = "GET /mac/52-54-00-12-34-56?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	_cleanup_free_ char *r1 = exchange(port, q, strlen(q));
	tap_ok(str_starts_with(r1, "HTTP/1.1 200 OK\r\n") && strstr(r1, "\r\nContent-Length: 32\r\n") &&
		       strstr(r1, "\r\n\r\n#!ipxe\necho 52-54-00-12-34-56 x\n") && strstr(r1, "Connection: close\r\n"),
	       "a route answers its path with generated bytes, and sees the Host header");
	/* two requests in one write, and a third, HEAD, that closes */
	q = "GET /f.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /sub/g.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-\r\n\r\n"
	    "HEAD /f.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	_cleanup_free_ char *r2 = exchange(port, q, strlen(q));
	char *second = strstr(r2, "\r\n\r\nfile") ? strstr(r2, "\r\n\r\nfile") + 8 : NULL;
	tap_ok(str_starts_with(r2, "HTTP/1.1 200 OK\r\n") && second && str_starts_with(second, "HTTP/1.1 206 ") &&
		       strstr(second, "Content-Range: bytes 1-2/3\r\n") && strstr(second, "\r\n\r\nubHTTP/1.1 200 OK\r\n") &&
		       count(r2, "HTTP/1.1 ") == 3 && strstr(r2, "Accept-Ranges: bytes\r\n") &&
		       str_starts_with(r2 + strlen(r2) - 4, "\r\n\r\n"),
	       "pipelined: the file, then its range (206), then HEAD without a body, on one connection");
	tap_is_int(calls, 4, "the route was asked for each request");
	q = "GET /f.txt HTTP/1.0\r\n\r\n";
	_cleanup_free_ char *r3 = exchange(port, q, strlen(q));
	tap_ok(str_starts_with(r3, "HTTP/1.1 200 OK\r\n") && strstr(r3, "Connection: close\r\n") &&
		       str_starts_with(r3 + strlen(r3) - 4, "file"),
	       "HTTP/1.0: answered, then the server closes");
	static char big[HTTP_HEAD_MAX + 100];
	int n = snprintf(big, sizeof(big), "GET /f.txt HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(big + n, 'a', sizeof(big) - (size_t)n - 4);
	memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);
	_cleanup_free_ char *r4 = exchange(port, big, sizeof(big));
	tap_ok(str_starts_with(r4, "HTTP/1.1 431 "), "a head over %d bytes: 431", HTTP_HEAD_MAX);
	q = "GET /../secret HTTP/1.1\r\nHost: x\r\n\r\nGET /out HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	_cleanup_free_ char *r5 = exchange(port, q, strlen(q));
	tap_ok(str_starts_with(r5, "HTTP/1.1 400 ") && strstr(r5, "HTTP/1.1 404 ") && !strstr(r5, "secret"),
	       "'..' 400, a symlink out 404: the secret is not sent");

	/* stop with a connection open and silent: it is closed, http_serve returns */
	int idle = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in b = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	connect(idle, (struct sockaddr *)&b, sizeof(b));
	usleep(100000);
	double t0 = now_seconds();
	void *ret = NULL;
	if (write(stop[1], "x", 1) == 1)
		pthread_join(t, &ret);
	tap_ok(ret == NULL && now_seconds() - t0 < 3, "stopped with an idle connection open: returns 0 at once");
	close(idle);
	close(stop[0]);
	close(stop[1]);
	close(listen_fd);
	close(s.dir_fd);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	char top[] = "/tmp/test-http-serve-XXXXXX";
	if (!mkdtemp(top))
		tap_skip_all("cannot create a temp dir");
	tap_plan(134);
	test_heads();
	test_ranges();
	test_paths();
	test_files(top);
	test_misc();
	test_server(top);
	rm_rf(top);
	return tap_done();
}
