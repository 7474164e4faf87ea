#include "util.h"

#include <stdarg.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <sys/vfs.h>
#include <time.h>

void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

size_t strv_length(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

int strv_push(char ***v, const char *s)
{
	size_t n = strv_length(*v);
	char *dup = strdup(s);
	if (!dup)
		return -ENOMEM;
	char **nv = realloc(*v, (n + 2) * sizeof(char *));
	if (!nv) {
		free(dup);
		return -ENOMEM;
	}
	nv[n] = dup;
	nv[n + 1] = NULL;
	*v = nv;
	return 0;
}

int strv_pushf(char ***v, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	int r = strv_push(v, s);
	free(s);
	return r;
}

bool strv_contains(char *const *v, const char *s)
{
	for (; v && *v; v++)
		if (STREQ(*v, s))
			return true;
	return false;
}

char *strv_join(char *const *v, const char *sep)
{
	size_t len = 1, sl = strlen(sep);
	for (char *const *p = v; p && *p; p++)
		len += strlen(*p) + sl;
	char *s = malloc(len), *o = s;
	if (!s)
		return NULL;
	for (char *const *p = v; p && *p; p++) {
		if (p != v)
			o = mempcpy(o, sep, sl);
		o = mempcpy(o, *p, strlen(*p));
	}
	*o = '\0';
	return s;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void strv_sort(char **v)
{
	qsort(v, strv_length(v), sizeof(char *), cmp_strp);
}

int parse_u64(const char *s, uint64_t *ret)
{
	if (!s || !*s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{ "", 0 },	  { "B", 0 },	 { "K", 10 },	{ "KiB", 10 }, { "M", 20 },
		{ "MiB", 20 }, { "G", 30 },	 { "GiB", 30 }, { "T", 40 },   { "TiB", 40 },
	};
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (!STREQ(end, units[i].suffix))
			continue;
		if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
			return -ERANGE;
		*ret = (uint64_t)v << units[i].shift;
		return 0;
	}
	return -EINVAL;
}

void format_size(uint64_t bytes, char buf[static 24])
{
	static const char units[] = "KMGT";
	int u = -1;
	while (u < 3 && bytes && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, 24, "%" PRIu64, bytes);
	else
		snprintf(buf, 24, "%" PRIu64 "%c", bytes, units[u]);
}

void format_size_human(uint64_t bytes, char buf[static 24])
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, 24, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, 24, "%.1f %s", v, units[u]);
}

static uint64_t mem_available(void)
{
	_cleanup_free_ char *text = NULL;
	if (read_file("/proc/meminfo", 1 << 16, &text, NULL) < 0)
		return 0;
	const char *p = strstr(text, "\nMemAvailable:");
	uint64_t kib;
	if (!p || sscanf(p + 14, "%" SCNu64 " kB", &kib) != 1 || kib > UINT64_MAX / 1024)
		return 0;
	return kib * 1024;
}

bool tmpfs_has_room(const char *dir, uint64_t need)
{
	struct statfs st;
	if (statfs(dir, &st) < 0 || st.f_type != TMPFS_MAGIC || st.f_bsize <= 0)
		return false;
	if (st.f_bavail < need / (uint64_t)st.f_bsize + 1)
		return false;
	uint64_t mem = mem_available();
	return mem > (512u << 20) && mem - (512u << 20) >= need;
}

int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
}

int rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (nftw(path, rm_one, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
		return -errno;
	return 0;
}

int read_fd(int fd, size_t max, char **ret_buf, size_t *ret_len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	/* /proc and /sys files say size 0: start small and grow. */
	size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size <= max ? (size_t)st.st_size + 1 : 4096;
	size_t len = 0;
	_cleanup_free_ char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (len + 1 >= cap) {
			/* Room for one more byte than MAX, to see the end of a file of exactly MAX. */
			if (cap >= max + 2)
				return -EFBIG;
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				return -ENOMEM;
			buf = nb;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return -EFBIG;
	}
	buf[len] = '\0';
	*ret_buf = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = len;
	return 0;
}

int read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	return read_file_flags(path, 0, max, ret_buf, ret_len);
}

int read_file_flags(const char *path, int flags, size_t max, char **ret_buf, size_t *ret_len)
{
	/* O_NONBLOCK: opening a FIFO with no writer (or a device) must not wait; it is refused
	 * below, before anything is read. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | flags);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	return read_fd(fd, max, ret_buf, ret_len);
}

int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n, len -= (size_t)n;
	}
	return 0;
}

int open_temp_beside(const char *path, mode_t mode, char **ret_tmp)
{
	static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	for (int tries = 0; tries < 100; tries++) {
		uint8_t rnd[6];
		char suffix[sizeof(rnd) + 1];
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return errno ? -errno : -EIO;
		for (size_t i = 0; i < sizeof(rnd); i++)
			suffix[i] = chars[rnd[i] % (sizeof(chars) - 1)];
		suffix[sizeof(rnd)] = '\0';
		_cleanup_free_ char *tmp = NULL;
		if (asprintf(&tmp, "%s.tmp-%s", path, suffix) < 0)
			return -ENOMEM;
		int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
		if (fd >= 0) {
			*ret_tmp = TAKE_PTR(tmp);
			return fd;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode)
{
	_cleanup_free_ char *tmp = NULL;
	int fd = open_temp_beside(path, mode, &tmp);
	if (fd < 0)
		return fd;
	int r = write_full(fd, buf, len);
	if (r < 0) {
		close(fd);
		unlink(tmp);
		return r;
	}
	return rename_temp(fd, tmp, path, mode);
}

int rename_temp(int fd, const char *tmp, const char *path, mode_t mode)
{
	int r = 0;
	/* The umask narrowed the mode at creation; now exactly MODE. */
	if (fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	if (!dir)
		return -ENOMEM;
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
	return 0;
}

int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	if (off > (uint64_t)INT64_MAX - len)
		return -EFBIG;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n, len -= (size_t)n, off += (uint64_t)n;
	}
	return 0;
}

int pwrite_counted(int fd, const void *buf, size_t len, uint64_t off, size_t *ret_done)
{
	const uint8_t *p = buf;
	*ret_done = 0;
	if (off > (uint64_t)INT64_MAX - len)
		return -EFBIG;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n, len -= (size_t)n, off += (uint64_t)n, *ret_done += (size_t)n;
	}
	return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done;
	return pwrite_counted(fd, buf, len, off, &done);
}

int copy_fd_range(int in, off_t in_off, int out, off_t out_off, uint64_t len)
{
	while (len) {
		size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
		ssize_t n = copy_file_range(in, &in_off, out, &out_off, chunk, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL)
				return -errno;
			/* Fall back to read/write. */
			static char buf[1 << 20];
			size_t want = chunk > sizeof(buf) ? sizeof(buf) : chunk;
			ssize_t rn = pread(in, buf, want, in_off);
			if (rn < 0)
				return -errno;
			if (rn == 0)
				return -EIO;
			int r = pwrite_full(out, buf, (size_t)rn, (uint64_t)out_off);
			if (r < 0)
				return r;
			in_off += rn;
			out_off += rn;
			len -= (uint64_t)rn;
			continue;
		}
		if (n == 0)
			return -EIO; /* source shorter than promised */
		len -= (uint64_t)n;
	}
	return 0;
}

int copy_sparse(int in, off_t in_off, int out, off_t out_off, uint64_t len)
{
	off_t end = in_off + (off_t)len, pos = in_off;
	while (pos < end) {
		off_t data = lseek(in, pos, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break; /* only holes remain */
			if (errno == EINVAL)
				return copy_fd_range(in, pos, out, out_off + (pos - in_off), (uint64_t)(end - pos));
			return -errno;
		}
		if (data >= end)
			break;
		off_t hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if (hole > end)
			hole = end;
		int r = copy_fd_range(in, data, out, out_off + (data - in_off), (uint64_t)(hole - data));
		if (r < 0)
			return r;
		pos = hole;
	}
	return 0;
}

double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool valid_name(const char *s, size_t max)
{
	size_t n = 0;
	if (!s || !*s || *s == '.' || *s == '-')
		return false;
	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return n <= max;
}

void names_add(char *buf, size_t size, const char *name, bool quoted)
{
	size_t len = strnlen(buf, size);
	if (len + 1 < size)
		snprintf(buf + len, size - len, quoted ? "%s'%s'" : "%s%s", len ? ", " : "", name);
}

/* The length of the UTF-8 sequence at S (at most LEN bytes) and its code point; 0 when the
 * bytes there are not one (a stray continuation byte, a cut or overlong sequence, a
 * surrogate, past U+10FFFF). */
static size_t utf8_char(const unsigned char *s, size_t len, uint32_t *ret_cp)
{
	size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
	if (n == 0 || s[0] > 0xf4 || n > len)
		return 0;
	uint32_t cp = s[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*ret_cp = cp;
	return n;
}

/* Code points a terminal acts on or that reorder what is shown: C1 controls (U+0080-U+009F:
 * CSI is U+009B) and the bidirectional embeddings, overrides and isolates. */
static bool cp_is_control(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

char *str_printable(const char *s, size_t len, const char *keep)
{
	if (len > SIZE_MAX / 4 - 1)
		return NULL;
	char *out = malloc(len * 4 + 1), *o = out;
	if (!out)
		return NULL;
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = 1;
		bool control;
		if (p[i] < 0x80)
			control = (p[i] < 0x20 || p[i] == 0x7f) && !(p[i] && keep && strchr(keep, p[i]));
		else if ((n = utf8_char(p + i, len - i, &cp)) == 0)
			n = 1, control = true; /* not UTF-8: on an 8-bit terminal 0x9b is CSI */
		else
			control = cp_is_control(cp);
		for (size_t k = 0; k < n; k++, i++) {
			if (!control) {
				*o++ = (char)p[i];
				continue;
			}
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[p[i] >> 4];
			*o++ = hex[p[i] & 15];
		}
	}
	*o = '\0';
	return out;
}

bool str_has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

bool str_has_space_or_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return true;
	return false;
}

bool str_starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

char *strdupf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

char *json_text_printable(const char *json)
{
	size_t len = strlen(json);
	if (len > SIZE_MAX / 6 - 1)
		return NULL;
	char *out = malloc(len * 6 + 1), *o = out; /* at most one \uXXXX a byte */
	if (!out)
		return NULL;
	const unsigned char *p = (const unsigned char *)json;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = 1;
		if (p[i] < 0x80) {
			if (p[i] == 0x7f)
				o = mempcpy(o, "\\u007f", 6);
			else
				*o++ = (char)p[i];
		} else if ((n = utf8_char(p + i, len - i, &cp)) == 0) {
			n = 1; /* not UTF-8: JSON text cannot carry the byte, U+FFFD stands for it */
			o = mempcpy(o, "\\ufffd", 6);
		} else if (cp_is_control(cp)) {
			o += snprintf(o, 7, "\\u%04x", (unsigned)cp);
		} else {
			o = mempcpy(o, p + i, n);
		}
		i += n;
	}
	*o = '\0';
	return out;
}

int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool mac_valid(const char *s)
{
	if (strlen(s) != 17)
		return false;
	for (size_t i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : hex_digit(s[i]) < 0)
			return false;
	return true;
}

#define OPENAT2_TRIES 64

int openat2_retry(int dirfd, const char *path, const struct open_how *how)
{
	for (unsigned i = 0;; i++) {
		long fd = syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
		if (fd >= 0)
			return (int)fd;
		if (errno != EAGAIN || i + 1 == OPENAT2_TRIES)
			return -errno;
		/* A few at once, then a millisecond apart: the mount or rename is over soon. */
		if (i >= 8)
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
}


char *qemu_opt_escape(const char *s)
{
	size_t n = strlen(s), commas = 0;
	for (size_t i = 0; i < n; i++)
		commas += s[i] == ',';
	char *out = malloc(n + commas + 1), *p = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		*p++ = s[i];
		if (s[i] == ',')
			*p++ = ',';
	}
	*p = '\0';
	return out;
}
