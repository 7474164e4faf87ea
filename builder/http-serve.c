/* The HTTP server of `pmoves-image serve`: parsers (pure, tested on their own), the file
 * lookup under the served directory, and the connections, one detached thread each.
 *
 * What reaches us from the network is checked here before it is used: the head's size
 * (HTTP_HEAD_MAX), every byte of the request line and header lines, Content-Length and the
 * Range numbers (64-bit overflow), the path (percent-decoded, no ".." segment, no NUL) and the
 * file it names (openat2 RESOLVE_BENEATH: nothing outside the directory, not even through a
 * symlink; regular files only). A client gets HTTP_TIMEOUT_DEFAULT seconds for each read and
 * each write, so a slow or silent one holds only its own thread. */
#include "http-serve.h"
#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#define REJECT_EXTRA 16     /* connections past the cap answered 503 by a thread each; more: closed */
#define REJECT_TIMEOUT 2    /* seconds such a connection gets to send its request */
#define LINGER_SECONDS 2    /* reading what a client still sends after our last response */
#define TLS_CHUNK 16384     /* one TLS record */
#define STOP_WAIT_SECONDS 5 /* for the connections' threads to end once their sockets are shut */

/* ---- parsers ---- */

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s, size_t len)
{
	if (!len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_tchar((unsigned char)s[i]))
			return false;
	return true;
}

long http_head_end(const char *buf, size_t len)
{
	size_t n = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
	for (size_t i = 0; i < n; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < n && buf[i + 1] == '\n')
			return (long)(i + 2);
		if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return (long)(i + 3);
	}
	return len >= HTTP_HEAD_MAX ? -E2BIG : 0;
}

/* The next line of [*AT, END): NUL-terminated in place (its CRLF or LF cut), *AT moved past
 * it. NULL when no LF is left. */
static char *next_line(char **at, char *end)
{
	char *line = *at, *nl = memchr(line, '\n', (size_t)(end - line));
	if (!nl)
		return NULL;
	*at = nl + 1;
	if (nl > line && nl[-1] == '\r')
		nl--;
	*nl = '\0';
	return line;
}

/* Each comma-separated element of a Connection header. */
static void connection_tokens(const char *v, bool *close, bool *keep_alive)
{
	while (*v) {
		v += strspn(v, " \t,");
		size_t n = strcspn(v, " \t,");
		if (n == 5 && !strncasecmp(v, "close", 5))
			*close = true;
		else if (n == 10 && !strncasecmp(v, "keep-alive", 10))
			*keep_alive = true;
		v += n;
	}
}

int http_parse_request(char *buf, size_t len, struct http_request *req)
{
	*req = (struct http_request){ 0 };
	if (!len || memchr(buf, '\0', len))
		return 400;
	char *at = buf, *end = buf + len;

	/* request-line = method SP request-target SP HTTP-version */
	char *line = next_line(&at, end);
	if (!line)
		return 400;
	char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp2 || !is_token(line, (size_t)(sp1 - line)) || sp2 == sp1 + 1)
		return 400;
	*sp1 = *sp2 = '\0';
	for (const char *t = sp1 + 1; *t; t++)
		if (*t <= 0x20 || *t >= 0x7f)
			return 400;
	const char *v = sp2 + 1;
	if (strncmp(v, "HTTP/", 5) || !(v[5] >= '0' && v[5] <= '9') || v[6] != '.' || !(v[7] >= '0' && v[7] <= '9') ||
	    v[8])
		return 400;
	if (v[5] != '1')
		return 505;
	req->method = line;
	req->target = sp1 + 1;
	req->minor = v[7] == '0' ? 0 : 1;
	req->get = STREQ(line, "GET");
	req->head = STREQ(line, "HEAD");

	unsigned hosts = 0, ranges = 0, if_ranges = 0;
	bool close = false, keep_alive = false, blank = false, has_length = false;
	uint64_t length = 0;
	while ((line = next_line(&at, end))) {
		if (!*line) {
			blank = true;
			break;
		}
		/* obs-fold (a line starting with a space or tab) is no token: refused (RFC 9112 5.2) */
		char *colon = strchr(line, ':');
		if (!colon || !is_token(line, (size_t)(colon - line)))
			return 400;
		*colon = '\0';
		char *val = colon + 1;
		val += strspn(val, " \t");
		size_t n = strlen(val);
		while (n && (val[n - 1] == ' ' || val[n - 1] == '\t'))
			n--;
		val[n] = '\0';
		for (const unsigned char *p = (const unsigned char *)val; *p; p++)
			if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
				return 400;
		if (!strcasecmp(line, "Host")) {
			hosts++;
			req->host = val;
		}
		else if (!strcasecmp(line, "Connection"))
			connection_tokens(val, &close, &keep_alive);
		else if (!strcasecmp(line, "Range")) {
			ranges++;
			req->range = val;
		} else if (!strcasecmp(line, "If-Range")) {
			if_ranges++;
			req->if_range = val;
		} else if (!strcasecmp(line, "Content-Length")) {
			uint64_t l;
			if (parse_u64(val, &l) < 0 || (has_length && l != length))
				return 400;
			has_length = true;
			length = l;
		} else if (!strcasecmp(line, "Transfer-Encoding"))
			req->has_body = true;
	}
	if (!blank || at != end)
		return 400;
	/* RFC 9112 3.2: 400 for a 1.1 request without Host, and for any with two */
	if (hosts > 1 || (hosts == 0 && req->minor == 1))
		return 400;
	/* Sent twice, a Range or If-Range is ambiguous: ignored, the answer is the whole file. */
	if (ranges > 1 || if_ranges > 1)
		req->range = req->if_range = NULL;
	req->has_body = req->has_body || length > 0;
	req->keep_alive = !close && (req->minor == 1 || keep_alive) && !req->has_body;
	return 0;
}

int http_target_path(const char *t, char *out, size_t size)
{
	if (!strncasecmp(t, "http://", 7) || !strncasecmp(t, "https://", 8)) {
		const char *auth = strstr(t, "://") + 3, *p = auth + strcspn(auth, "/?#");
		t = *p == '/' ? p : "/";
	}
	if (*t != '/')
		return 400;
	size_t tlen = strcspn(t, "?#"), n = 0;
	for (size_t i = 0; i < tlen; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c == '%') {
			/* t is NUL-terminated and '?', '#' and NUL are not hex digits: no reading past it */
			int hi = hex_digit(t[i + 1]), lo = hi < 0 ? -1 : hex_digit(t[i + 2]);
			if (hi < 0 || lo < 0)
				return 400;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
			if (!c)
				return 400;
		}
		if (n + 1 >= size)
			return 414;
		out[n++] = (char)c;
	}
	/* segments, in place: the write position never passes the read position */
	size_t w = 0, i = 0;
	bool dir = false;
	while (i < n) {
		if (out[i] == '/') {
			i++;
			dir = true;
			continue;
		}
		size_t seg = i;
		while (i < n && out[i] != '/')
			i++;
		size_t sl = i - seg;
		if (sl == 2 && out[seg] == '.' && out[seg + 1] == '.')
			return 400;
		dir = sl == 1 && out[seg] == '.';
		if (dir)
			continue;
		out[w++] = '/';
		memmove(out + w, out + seg, sl);
		w += sl;
	}
	if (dir || !w)
		out[w++] = '/';
	out[w] = '\0';
	return 0;
}

/* Digits at S, saturating at UINT64_MAX (a number past 64 bits is past any end). The end of
 * the digits, or NULL when there are none. */
static const char *parse_digits(const char *s, uint64_t *ret)
{
	if (*s < '0' || *s > '9')
		return NULL;
	uint64_t v = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*ret = v;
	return s;
}

enum http_range_result http_parse_range(const char *value, uint64_t size, uint64_t *start, uint64_t *len)
{
	if (!value || strncasecmp(value, "bytes=", 6))
		return HTTP_RANGE_IGNORE;
	const char *p = value + 6, *q;
	p += strspn(p, " \t");
	uint64_t first = 0, last = 0;
	bool has_first = false, has_last = false;
	if ((q = parse_digits(p, &first)))
		has_first = true, p = q;
	if (*p++ != '-')
		return HTTP_RANGE_IGNORE;
	if ((q = parse_digits(p, &last)))
		has_last = true, p = q;
	p += strspn(p, " \t");
	if (*p || (!has_first && !has_last) || (has_first && has_last && first > last))
		return HTTP_RANGE_IGNORE; /* a list (","), "bytes=-", "5-4", junk: RFC 9110 lets us ignore it */
	if (size == 0)
		return HTTP_RANGE_UNSAT;
	if (has_first) {
		if (first >= size)
			return HTTP_RANGE_UNSAT;
		uint64_t end = has_last && last < size - 1 ? last : size - 1;
		*start = first;
		*len = end - first + 1;
		return HTTP_RANGE_OK;
	}
	if (last == 0) /* "-0": the last zero bytes */
		return HTTP_RANGE_UNSAT;
	*len = last < size ? last : size;
	*start = size - *len;
	return HTTP_RANGE_OK;
}

const char *http_content_type(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ "ipxe", "text/plain; charset=utf-8" }, { "txt", "text/plain; charset=utf-8" },
		{ "conf", "text/plain; charset=utf-8" }, { "cfg", "text/plain; charset=utf-8" },
		{ "sh", "text/plain; charset=utf-8" },   { "json", "application/json" },
		{ "html", "text/html; charset=utf-8" },
	};
	const char *base = strrchr(path, '/'), *dot;
	base = base ? base + 1 : path;
	if ((dot = strrchr(base, '.')) && dot != base)
		for (size_t i = 0; i < ARRAY_SIZE(types); i++)
			if (!strcasecmp(dot + 1, types[i].ext))
				return types[i].type;
	return "application/octet-stream";
}

const char *http_status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 206: return "Partial Content";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

void http_date(int64_t t, char buf[static 32])
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
		tt = 0;
		gmtime_r(&tt, &tm);
	}
	snprintf(buf, 32, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int http_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port;
	size_t hl;
	bool v6 = *s == '[';
	memset(ret, 0, sizeof(*ret));
	if (v6) {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		hl = (size_t)(close - s - 1);
		port = close + 2;
		s++;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
		port = colon + 1;
	}
	if (!hl || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	uint64_t p;
	if (parse_u64(port, &p) < 0 || p > 65535)
		return -EINVAL;
	struct sockaddr_in *a4 = (struct sockaddr_in *)ret;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ret;
	if (v6) {
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			return -EINVAL;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)p);
		*ret_len = sizeof(*a6);
	} else {
		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return -EINVAL;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)p);
		*ret_len = sizeof(*a4);
	}
	return 0;
}

/* The address of A, without its port, into BUF. */
static void format_ip(const struct sockaddr *a, char buf[static 64])
{
	const void *addr = a->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr
						    : (const void *)&((const struct sockaddr_in *)a)->sin_addr;
	if ((a->sa_family != AF_INET && a->sa_family != AF_INET6) || !inet_ntop(a->sa_family, addr, buf, 64))
		snprintf(buf, 64, "?");
}

void http_format_addr(const struct sockaddr *a, char buf[static 64])
{
	char ip[64];
	format_ip(a, ip);
	unsigned port = ntohs(a->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)a)->sin6_port
						       : ((const struct sockaddr_in *)a)->sin_port);
	snprintf(buf, 64, a->sa_family == AF_INET6 ? "[%.46s]:%u" : "%.46s:%u", ip, port);
}

/* ---- files ---- */

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK) /* a FIFO does not block the open */

/* Without openat2: each directory opened with O_NOFOLLOW from the last, so no symlink is
 * followed at all (safe, if stricter than openat2's "only those that stay inside"). */
static int open_components(int dir_fd, const char *path)
{
	_cleanup_free_ char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	_cleanup_close_ int fd = -1;
	char *save = NULL;
	for (char *seg = strtok_r(p, "/", &save); seg;) {
		char *next = strtok_r(NULL, "/", &save);
		if (STREQ(seg, ".."))
			return -EXDEV;
		int nfd = openat(fd >= 0 ? fd : dir_fd, seg,
				 next ? O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC : OPEN_FLAGS | O_NOFOLLOW);
		if (nfd < 0)
			return -errno;
		closep(&fd);
		fd = nfd;
		seg = next;
	}
	return fd < 0 ? -EISDIR : TAKE_FD(fd);
}

int http_open_beneath(int dir_fd, const char *path, bool force_fallback)
{
	while (*path == '/')
		path++;
	if (!*path || path[strlen(path) - 1] == '/')
		return -EISDIR; /* a directory asked for: no listings */
	_cleanup_close_ int fd = -1;
	if (!force_fallback) {
		struct open_how how = {
			.flags = OPEN_FLAGS,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
		};
		fd = openat2_retry(dir_fd, path, &how);
		if (fd < 0 && fd != -ENOSYS)
			return fd;
	}
	if (fd < 0) {
		fd = open_components(dir_fd, path);
		if (fd < 0)
			return fd;
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	return TAKE_FD(fd);
}

/* ---- connections ---- */

struct server_state {
	struct http_server *s;
	pthread_mutex_t lock;
	pthread_cond_t ended;
	unsigned serving, rejecting, slots;
	int *fds; /* each connection's socket, -1 for a free slot: shut down when the server stops */
};

struct conn {
	struct server_state *st;
	int fd, slot;
	bool reject;    /* over the cap: answer 503 to whatever comes */
	SSL *ssl;
	bool tls_broken; /* a fatal TLS error: no close_notify */
	unsigned timeout;
	char ip[64];
	char line[HTTP_LOG_PATH_MAX + 2]; /* the request line as received (one byte more: "..."), for the log */
	size_t have;
	char buf[HTTP_HEAD_MAX];
	char path[HTTP_HEAD_MAX];
};

/* Bytes read, 0 at the end, -ETIMEDOUT after the timeout without a byte, or another -errno. */
static long conn_read(struct conn *c, void *buf, size_t len)
{
	if (c->ssl) {
		size_t n;
		int r = SSL_read_ex(c->ssl, buf, len, &n);
		if (r == 1)
			return (long)n;
		int e = SSL_get_error(c->ssl, r);
		bool timeout = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
		c->tls_broken = e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL;
		ERR_clear_error();
		return e == SSL_ERROR_ZERO_RETURN ? 0 : timeout ? -ETIMEDOUT : -EIO;
	}
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, 0);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	}
}

/* All of BUF; MORE: more bytes follow at once (sendfile), so no packet for the head alone. */
static int conn_write(struct conn *c, const void *buf, size_t len, bool more)
{
	const char *p = buf;
	while (len) {
		size_t n;
		if (c->ssl) {
			int r = SSL_write_ex(c->ssl, p, len, &n);
			if (r != 1) {
				int e = SSL_get_error(c->ssl, r);
				c->tls_broken = e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL;
				ERR_clear_error();
				return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? -ETIMEDOUT : -EIO;
			}
		} else {
			ssize_t r = send(c->fd, p, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
			n = (size_t)r;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* LEN bytes of FD from OFF: sendfile(2) on plain sockets, pread and SSL_write with TLS. *SENT
 * counts what went out, also when it fails (-EIO: the file ended early, it shrank). */
static int conn_send_file(struct conn *c, int fd, uint64_t off, uint64_t len, uint64_t *sent)
{
	if (!c->ssl) {
		off_t o = (off_t)off;
		while (len) {
			ssize_t n = sendfile(c->fd, fd, &o, len > (1u << 30) ? (1u << 30) : (size_t)len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return errno == EAGAIN ? -ETIMEDOUT : -errno;
			if (n == 0)
				return -EIO;
			len -= (uint64_t)n;
			*sent += (uint64_t)n;
		}
		return 0;
	}
	_cleanup_free_ char *buf = malloc(TLS_CHUNK);
	if (!buf)
		return -ENOMEM;
	while (len) {
		size_t n = len > TLS_CHUNK ? TLS_CHUNK : (size_t)len;
		int r = pread_full(fd, buf, n, off);
		if (r == 0)
			r = conn_write(c, buf, n, false);
		if (r < 0)
			return r;
		off += n;
		len -= n;
		*sent += n;
	}
	return 0;
}

/* `serve: IP "METHOD TARGET" STATUS BYTES SECONDS`; the request as sent, escaped, at most
 * HTTP_LOG_PATH_MAX bytes of each part ('"' escaped too, so the quotes delimit it). */
static void log_request(struct conn *c, const char *method, const char *target, int status, uint64_t bytes,
			double t0)
{
	if (c->st->s->quiet)
		return;
	char shown[2 * (HTTP_LOG_PATH_MAX * 4 + 4)];
	size_t n = 0;
	const char *parts[2] = { method, target };
	for (size_t k = 0; k < 2 && parts[k]; k++) {
		if (k)
			shown[n++] = ' ';
		size_t len = strnlen(parts[k], HTTP_LOG_PATH_MAX);
		for (size_t i = 0; i < len; i++)
			if (parts[k][i] == '"')
				memcpy(shown + n, "\\x22", 4), n += 4;
			else
				shown[n++] = parts[k][i];
		if (parts[k][len])
			memcpy(shown + n, "...", 3), n += 3;
	}
	_cleanup_free_ char *safe = str_printable(shown, n, NULL);
	fprintf(stderr, "serve: %s \"%s\" %d %" PRIu64 " %.3f\n", c->ip, safe ? safe : "?", status, bytes,
		now_seconds() - t0);
}

struct response {
	int status;
	const char *type;
	uint64_t len;   /* Content-Length */
	char extra[256]; /* more header lines, each ending in CRLF */
	const char *body; /* LEN bytes, or */
	int fd;           /* LEN bytes of this file from OFF */
	uint64_t off;
};

/* The head, then (not for HEAD) the body. *SENT: body bytes written. */
static int send_response(struct conn *c, bool head_only, bool keep, bool ka_asked, const struct response *rs,
			 uint64_t *sent)
{
	char date[32], h[1024];
	http_date(time(NULL), date);
	int n = snprintf(h, sizeof(h),
			 "HTTP/1.1 %d %s\r\nServer: pmoves-image\r\nDate: %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %" PRIu64 "\r\n%s%s\r\n",
			 rs->status, http_status_text(rs->status), date, rs->type, rs->len, rs->extra,
			 !keep ? "Connection: close\r\n" : ka_asked ? "Connection: keep-alive\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(h))
		return -EOVERFLOW;
	bool body = !head_only && rs->len > 0;
	int r = conn_write(c, h, (size_t)n, body && rs->fd >= 0);
	if (r < 0 || !body)
		return r;
	if (rs->fd >= 0)
		return conn_send_file(c, rs->fd, rs->off, rs->len, sent);
	r = conn_write(c, rs->body, (size_t)rs->len, false);
	if (r == 0)
		*sent += rs->len;
	return r;
}

/* A short text answer: "404 Not Found\n". */
static int send_status(struct conn *c, bool head_only, bool keep, bool ka_asked, int status, const char *extra,
		       uint64_t *sent)
{
	char body[64];
	struct response rs = { .status = status, .type = "text/plain; charset=utf-8", .body = body, .fd = -1 };
	rs.len = (uint64_t)snprintf(body, sizeof(body), "%d %s\n", status, http_status_text(status));
	snprintf(rs.extra, sizeof(rs.extra), "%s", extra ? extra : "");
	return send_response(c, head_only, keep, ka_asked, &rs, sent);
}

static int status_of_open_error(int r)
{
	switch (r) {
	case -EACCES:
	case -EPERM:
		return 403;
	case -ENOENT:
	case -ENOTDIR:
	case -EISDIR:
	case -EINVAL: /* not a regular file */
	case -EXDEV:  /* a way out of the directory */
	case -ELOOP:
	case -ENAMETOOLONG:
		return 404;
	default:
		return 500;
	}
}

/* Answer one parsed request. *KEEP may turn false. < 0: the connection failed. */
static int handle_request(struct conn *c, const struct http_request *rq, bool *keep, double t0)
{
	struct http_server *s = c->st->s;
	bool ka_asked = rq->minor == 0;
	uint64_t sent = 0;
	int r, status;
	if (!rq->get && !rq->head) {
		*keep = false;
		r = send_status(c, false, false, ka_asked, 405, "Allow: GET, HEAD\r\n", &sent);
		log_request(c, rq->method, rq->target, 405, sent, t0);
		return r;
	}
	status = http_target_path(rq->target, c->path, sizeof(c->path));
	if (status) {
		r = send_status(c, rq->head, *keep, ka_asked, status, NULL, &sent);
		log_request(c, rq->method, rq->target, status, sent, t0);
		return r;
	}

	if (s->route) {
		struct http_reply rep = { .status = 200 };
		r = s->route(s->route_ctx, c->path, rq, &rep);
		if (r != 0) {
			_cleanup_free_ char *body = rep.body;
			struct response rs = { .status = r < 0 ? 500 : rep.status, .fd = -1 };
			if (r < 0 || (!body && rep.len) || rs.status < 200 || rs.status > 599) {
				r = send_status(c, rq->head, *keep, ka_asked, 500, NULL, &sent);
				status = 500;
			} else {
				rs.type = rep.content_type ? rep.content_type : "text/plain; charset=utf-8";
				rs.body = body ? body : "";
				rs.len = rep.len;
				r = send_response(c, rq->head, *keep, ka_asked, &rs, &sent);
				status = rs.status;
			}
			if (body && rep.wipe)
				explicit_bzero(body, rep.len);
			log_request(c, rq->method, rq->target, status, sent, t0);
			return r;
		}
	}

	_cleanup_close_ int fd = http_open_beneath(s->dir_fd, c->path, false);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) < 0)
		fd = -errno;
	if (fd < 0) {
		status = status_of_open_error(fd);
		r = send_status(c, rq->head, *keep, ka_asked, status, NULL, &sent);
		log_request(c, rq->method, rq->target, status, sent, t0);
		return r;
	}
	uint64_t size = (uint64_t)st.st_size, start = 0, len = size;
	char lastmod[32];
	http_date(st.st_mtime, lastmod);
	enum http_range_result range = HTTP_RANGE_IGNORE;
	/* Range is for GET only (RFC 9110 14.2); If-Range with anything but our Last-Modified
	 * (we send no ETag) asks for the whole file. */
	if (rq->get && (!rq->if_range || STREQ(rq->if_range, lastmod)))
		range = http_parse_range(rq->range, size, &start, &len);
	struct response rs = { .status = 200, .type = http_content_type(c->path), .len = size, .fd = fd };
	if (range == HTTP_RANGE_UNSAT) {
		char extra[96];
		snprintf(extra, sizeof(extra), "Content-Range: bytes */%" PRIu64 "\r\n", size);
		r = send_status(c, false, *keep, ka_asked, 416, extra, &sent);
		log_request(c, rq->method, rq->target, 416, sent, t0);
		return r;
	}
	int n = snprintf(rs.extra, sizeof(rs.extra), "Accept-Ranges: bytes\r\nLast-Modified: %s\r\n", lastmod);
	if (range == HTTP_RANGE_OK) {
		rs.status = 206;
		rs.off = start;
		rs.len = len;
		snprintf(rs.extra + n, sizeof(rs.extra) - (size_t)n,
			 "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n", start, start + len - 1, size);
	}
	r = send_response(c, rq->head, *keep, ka_asked, &rs, &sent);
	log_request(c, rq->method, rq->target, rs.status, sent, t0);
	return r;
}

/* Read until c->buf holds a whole head: its length; 0 when the client closed or stayed silent
 * before sending a byte of it; -ETIMEDOUT for a head begun but not finished in time; -E2BIG
 * past HTTP_HEAD_MAX; another -errno. */
static long read_head(struct conn *c)
{
	double start = c->have ? now_seconds() : 0;
	for (;;) {
		/* RFC 9112 2.2: empty lines before a request line are ignored */
		size_t skip = 0;
		while (skip < c->have && (c->buf[skip] == '\r' || c->buf[skip] == '\n'))
			skip++;
		memmove(c->buf, c->buf + skip, c->have - skip);
		c->have -= skip;
		long end = http_head_end(c->buf, c->have);
		if (end != 0)
			return end;
		/* a byte at a time keeps every read within the timeout: the head as a whole too */
		if (c->have && now_seconds() - start > c->timeout)
			return -ETIMEDOUT;
		long n = conn_read(c, c->buf + c->have, sizeof(c->buf) - c->have);
		if (n == 0 || n == -ETIMEDOUT)
			return c->have ? -ETIMEDOUT : 0;
		if (n < 0)
			return n;
		if (!c->have)
			start = now_seconds();
		c->have += (size_t)n;
	}
}

/* After our last response: close_notify, FIN, then what the client still sends is read (for
 * LINGER_SECONDS at most) so that closing with unread bytes does not reset the connection
 * before the client has read the answer. */
static void linger_close(struct conn *c)
{
	if (c->ssl && !c->tls_broken)
		SSL_shutdown(c->ssl);
	ERR_clear_error();
	c->tls_broken = true; /* shut down now, once */
	if (shutdown(c->fd, SHUT_WR) < 0)
		return;
	double end = now_seconds() + LINGER_SECONDS;
	size_t total = 0;
	for (;;) {
		double left = end - now_seconds();
		if (left <= 0 || total > (1u << 20))
			return;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			return;
		ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), MSG_DONTWAIT);
		if (n <= 0 && !(n < 0 && errno == EINTR))
			return;
		if (n > 0)
			total += (size_t)n;
	}
}

static void conn_end(struct conn *c)
{
	if (c->ssl) {
		if (!c->tls_broken)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		ERR_clear_error();
	}
	struct server_state *st = c->st;
	pthread_mutex_lock(&st->lock);
	st->fds[c->slot] = -1;
	close(c->fd);
	if (c->reject)
		st->rejecting--;
	else
		st->serving--;
	pthread_cond_broadcast(&st->ended);
	pthread_mutex_unlock(&st->lock);
	free(c);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct http_server *s = c->st->s;
	if (s->tls) {
		c->ssl = SSL_new(s->tls);
		if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_accept(c->ssl) != 1) {
			unsigned long e = ERR_peek_last_error();
			if (!s->quiet)
				fprintf(stderr, "serve: %s TLS handshake failed%s%s\n", c->ip, e ? ": " : "",
					e && ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "");
			c->tls_broken = true;
			conn_end(c);
			return NULL;
		}
	}
	for (;;) {
		long end = read_head(c);
		double t0 = now_seconds();
		uint64_t sent = 0;
		if (end == 0 || end == -EIO || end == -ECONNRESET || (end < 0 && end != -E2BIG && end != -ETIMEDOUT))
			break;
		size_t ll = 0; /* the request line, for the log: c->buf is not a string */
		while (ll < c->have && ll <= HTTP_LOG_PATH_MAX && c->buf[ll] != '\r' && c->buf[ll] != '\n' && c->buf[ll])
			ll++;
		memcpy(c->line, c->buf, ll);
		c->line[ll] = '\0';
		if (end < 0 || c->reject) {
			int status = c->reject ? 503 : end == -E2BIG ? 431 : 408;
			int r = send_status(c, false, false, false, status, c->reject ? "Retry-After: 1\r\n" : NULL, &sent);
			log_request(c, end == -ETIMEDOUT ? "-" : c->line, NULL, status, sent, t0);
			if (r == 0)
				linger_close(c);
			break;
		}
		struct http_request rq;
		int status = http_parse_request(c->buf, (size_t)end, &rq);
		if (status) {
			int r = send_status(c, false, false, false, status, NULL, &sent);
			log_request(c, c->line, NULL, status, sent, t0);
			if (r == 0)
				linger_close(c);
			break;
		}
		bool keep = rq.keep_alive;
		int r = handle_request(c, &rq, &keep, t0);
		if (r < 0)
			break;
		if (!keep) {
			linger_close(c);
			break;
		}
		memmove(c->buf, c->buf + end, c->have - (size_t)end);
		c->have -= (size_t)end;
	}
	conn_end(c);
	return NULL;
}

/* A new connection FD from PEER: a thread for it, or closed. */
static void conn_start(struct server_state *st, pthread_attr_t *attr, int fd, const struct sockaddr *peer)
{
	struct http_server *s = st->s;
	unsigned max = s->max_conns ? s->max_conns : HTTP_MAX_CONNS;
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->st = st;
	c->fd = fd;
	format_ip(peer, c->ip);
	pthread_mutex_lock(&st->lock);
	if (st->serving < max)
		st->serving++;
	else if (st->rejecting < REJECT_EXTRA)
		st->rejecting++, c->reject = true;
	else {
		pthread_mutex_unlock(&st->lock);
		if (!s->quiet)
			fprintf(stderr, "serve: %s closed: %u connections open\n", c->ip, max + REJECT_EXTRA);
		close(fd);
		free(c);
		return;
	}
	for (c->slot = 0; st->fds[c->slot] >= 0; c->slot++)
		;
	st->fds[c->slot] = fd;
	pthread_mutex_unlock(&st->lock);

	c->timeout = c->reject ? REJECT_TIMEOUT : s->timeout ? s->timeout : HTTP_TIMEOUT_DEFAULT;
	struct timeval tv = { .tv_sec = c->timeout };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	pthread_t t;
	int r = pthread_create(&t, attr, conn_main, c);
	if (r != 0) {
		if (!s->quiet)
			fprintf(stderr, "serve: %s closed: cannot start a thread: %s\n", c->ip, strerror(r));
		c->tls_broken = true;
		conn_end(c);
	}
}

int http_serve(struct http_server *s)
{
	unsigned max = s->max_conns ? s->max_conns : HTTP_MAX_CONNS;
	struct server_state st = { .s = s, .slots = max + REJECT_EXTRA };
	st.fds = malloc(st.slots * sizeof(int));
	if (!st.fds)
		return -ENOMEM;
	for (unsigned i = 0; i < st.slots; i++)
		st.fds[i] = -1;
	pthread_mutex_init(&st.lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st.ended, &ca);
	pthread_condattr_destroy(&ca);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 1 << 20);

	int ret = 0;
	bool warned = false;
	for (;;) {
		struct pollfd p[2] = { { .fd = s->listen_fd, .events = POLLIN }, { .fd = s->stop_fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = log_errno(-errno, "serve: cannot wait for connections");
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents & (POLLERR | POLLNVAL)) {
			ret = -EIO;
			log_error("serve: the listening socket failed");
			break;
		}
		if (!(p[0].revents & POLLIN))
			continue;
		struct sockaddr_storage peer;
		socklen_t pl = sizeof(peer);
		int fd = accept4(s->listen_fd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
				/* out of descriptors or memory: wait for connections to end */
				if (!warned)
					log_errno(-e, "serve: cannot accept a connection");
				warned = true;
				poll(NULL, 0, 100);
			} else if (e != EINTR && e != EAGAIN && e != ECONNABORTED && e != EPROTO && e != EPERM) {
				ret = log_errno(-e, "serve: cannot accept a connection");
				break;
			}
			continue;
		}
		warned = false;
		conn_start(&st, &attr, fd, (struct sockaddr *)&peer);
	}

	/* Stop: every connection's socket shut down, so that its thread's read or write returns;
	 * then wait for the threads (they use the SSL_CTX and the directory fd). */
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += STOP_WAIT_SECONDS;
	pthread_mutex_lock(&st.lock);
	for (unsigned i = 0; i < st.slots; i++)
		if (st.fds[i] >= 0)
			shutdown(st.fds[i], SHUT_RDWR);
	while (st.serving + st.rejecting > 0)
		if (pthread_cond_timedwait(&st.ended, &st.lock, &deadline) == ETIMEDOUT)
			break;
	bool left = st.serving + st.rejecting > 0;
	pthread_mutex_unlock(&st.lock);
	pthread_attr_destroy(&attr);
	if (left) /* threads still hold the state: it stays, the process ends anyway */
		return ret < 0 ? ret : -ETIMEDOUT;
	pthread_cond_destroy(&st.ended);
	pthread_mutex_destroy(&st.lock);
	free(st.fds);
	return ret;
}

/* ---- TLS ---- */

/* The last OpenSSL error's reason, and the queue cleared. */
static const char *tls_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *why = e ? ERR_reason_error_string(e) : NULL;
	ERR_clear_error();
	return why ? why : "unknown error";
}

static int check_file(const char *what, const char *path, char **why)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		int e = errno;
		*why = strdupf("%s '%s': %s", what, path, strerror(e));
		return e == ENOENT ? -ENOENT : -EINVAL;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = strdupf("%s '%s' is not a regular file", what, path);
		return -EINVAL;
	}
	return 0;
}

int http_tls_load(const char *cert, const char *key, void **ret, char **why)
{
	*why = NULL;
	int r = check_file("certificate", cert, why);
	if (r == 0)
		r = check_file("key", key, why);
	if (r < 0)
		return r;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		SSL_CTX_free(ctx);
		*why = strdupf("cannot set up TLS: %s", tls_reason());
		return -ENOMEM;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		*why = strdupf("certificate '%s' is not a PEM certificate: %s", cert, tls_reason());
	else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		*why = strdupf("key '%s' is not a PEM private key: %s", key, tls_reason());
	else if (SSL_CTX_check_private_key(ctx) != 1)
		*why = strdupf("key '%s' is not the key of certificate '%s': %s", key, cert, tls_reason());
	else {
		*ret = ctx;
		return 0;
	}
	SSL_CTX_free(ctx);
	return -EINVAL;
}

void http_tls_free(void *tls)
{
	SSL_CTX_free(tls);
}
