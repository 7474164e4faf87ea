/* bmaptool's block map, read. The format (bmaptools/BmapCreate.py, BmapCopy.py):
 *
 *   <bmap version="2.0">
 *     <ImageSize> N </ImageSize> <BlockSize> 4096 </BlockSize> <BlocksCount> N </BlocksCount>
 *     <MappedBlocksCount> N </MappedBlocksCount> <ChecksumType> sha256 </ChecksumType>
 *     <BmapFileChecksum> sha256 of this file with these 64 digits as '0' </BmapFileChecksum>
 *     <BlockMap> <Range chksum="HEX"> FIRST-LAST </Range> <Range> BLOCK </Range> ... </BlockMap>
 *   </bmap>
 *
 * Versions 1.0-1.3 have no ChecksumType (1.3 has SHA-1 in "sha1" attributes, which we do not
 * check: the flash computes its own digests then); 1.4 is 2.0 under another number. A small
 * tokenizer, not an XML library: comments (the header's mentions element names), processing
 * instructions, start/end tags with attributes, text. */
#include "bmap-read.h"
#include "hash.h"
#include "util.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>

enum xml_tok { X_END, X_OPEN, X_EMPTY, X_CLOSE, X_TEXT, X_BAD };

struct xml {
	const char *p, *end;
	const char *s; /* the token: a tag's name, or text */
	size_t n;
	const char *attrs; /* X_OPEN/X_EMPTY: the text after the name, up to '>' */
	size_t attrs_n;
};

static const char *find(const char *p, const char *end, const char *what)
{
	size_t wl = strlen(what);
	for (; p && (size_t)(end - p) >= wl; p++)
		if (memcmp(p, what, wl) == 0)
			return p;
	return NULL;
}

static enum xml_tok xml_next(struct xml *x)
{
	for (;;) {
		if (x->p >= x->end)
			return X_END;
		if (*x->p != '<') {
			const char *lt = memchr(x->p, '<', (size_t)(x->end - x->p));
			x->s = x->p;
			x->n = (size_t)((lt ? lt : x->end) - x->p);
			x->p += x->n;
			return X_TEXT;
		}
		const char *q;
		if ((size_t)(x->end - x->p) >= 4 && memcmp(x->p, "<!--", 4) == 0) {
			if (!(q = find(x->p + 4, x->end, "-->")))
				return X_BAD;
			x->p = q + 3;
			continue;
		}
		if ((size_t)(x->end - x->p) >= 2 && memcmp(x->p, "<?", 2) == 0) {
			if (!(q = find(x->p + 2, x->end, "?>")))
				return X_BAD;
			x->p = q + 2;
			continue;
		}
		const char *gt = memchr(x->p, '>', (size_t)(x->end - x->p));
		if (!gt)
			return X_BAD;
		bool close = x->p[1] == '/';
		const char *name = x->p + (close ? 2 : 1), *e = name;
		while (e < gt && (isalnum((unsigned char)*e) || *e == '_' || *e == '-' || *e == '.' || *e == ':'))
			e++;
		if (e == name)
			return X_BAD;
		x->s = name;
		x->n = (size_t)(e - name);
		x->attrs = e;
		x->attrs_n = (size_t)(gt - e);
		x->p = gt + 1;
		if (close)
			return X_CLOSE;
		if (gt > e && gt[-1] == '/') {
			x->attrs_n--;
			return X_EMPTY;
		}
		return X_OPEN;
	}
}

static bool tok_is(const struct xml *x, const char *name)
{
	return x->n == strlen(name) && memcmp(x->s, name, x->n) == 0;
}

/* The value of attribute NAME in A (N bytes) into BUF: 0, -ENOENT, or -EBADMSG when it does
 * not fit. */
static int attr_get(const char *a, size_t n, const char *name, char *buf, size_t size)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i + nl + 2 < n; i++) {
		if ((i > 0 && !isspace((unsigned char)a[i - 1])) || memcmp(a + i, name, nl) != 0)
			continue;
		size_t j = i + nl;
		while (j < n && isspace((unsigned char)a[j]))
			j++;
		if (j >= n || a[j] != '=')
			continue;
		j++;
		while (j < n && isspace((unsigned char)a[j]))
			j++;
		if (j >= n || (a[j] != '"' && a[j] != '\''))
			return -EBADMSG;
		char quote = a[j++];
		const char *v = a + j, *ve = memchr(v, quote, n - j);
		if (!ve || (size_t)(ve - v) >= size)
			return -EBADMSG;
		memcpy(buf, v, (size_t)(ve - v));
		buf[ve - v] = '\0';
		return 0;
	}
	return -ENOENT;
}

/* Text of an element, trimmed, into BUF. */
static bool text_copy(const char *s, size_t n, char *buf, size_t size)
{
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= size)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return true;
}

static int fail(char **ret_error, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **ret_error, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (ret_error && vasprintf(ret_error, fmt, ap) < 0)
		*ret_error = NULL;
	va_end(ap);
	return r;
}

static int hex_digest(const char *s, uint8_t out[32])
{
	if (strlen(s) != 64)
		return -EBADMSG;
	for (size_t i = 0; i < 32; i++) {
		unsigned v = 0;
		for (size_t k = 0; k < 2; k++) {
			char c = (char)tolower((unsigned char)s[2 * i + k]);
			if (c >= '0' && c <= '9')
				v = v * 16 + (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v = v * 16 + (unsigned)(c - 'a' + 10);
			else
				return -EBADMSG;
		}
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* "FIRST-LAST" or "FIRST" (blocks, inclusive). */
static int parse_blocks(char *s, uint64_t *ret_first, uint64_t *ret_last)
{
	char *dash = strchr(s, '-');
	if (dash) {
		*dash = '\0';
		char *a = s, *b = dash + 1;
		while (*b && isspace((unsigned char)*b))
			b++;
		for (char *e = a + strlen(a); e > a && isspace((unsigned char)e[-1]);)
			*--e = '\0';
		if (parse_u64(a, ret_first) < 0 || parse_u64(b, ret_last) < 0)
			return -EBADMSG;
		return 0;
	}
	if (parse_u64(s, ret_first) < 0)
		return -EBADMSG;
	*ret_last = *ret_first;
	return 0;
}

static const char *const header_names[] = { "ImageSize", "BlockSize", "BlocksCount", "MappedBlocksCount" };

/* The BlockMap element's ranges, after its start tag. */
static int parse_ranges(struct xml *x, struct bmap *b, bool sha256, char **ret_error)
{
	size_t cap = 0;
	uint64_t next_block = 0, mapped = 0;
	for (;;) {
		enum xml_tok t = xml_next(x);
		if (t == X_TEXT)
			continue;
		if (t == X_CLOSE && tok_is(x, "BlockMap"))
			break;
		if (t != X_OPEN || !tok_is(x, "Range"))
			return fail(ret_error, -EBADMSG, "BlockMap holds something other than Range elements");
		if (b->n >= BMAP_MAX_RANGES)
			return fail(ret_error, -E2BIG, "more than %u ranges", BMAP_MAX_RANGES);
		char sum[80] = "";
		int r = attr_get(x->attrs, x->attrs_n, "chksum", sum, sizeof(sum));
		if (r == -EBADMSG)
			return fail(ret_error, r, "range %zu: a bad chksum attribute", b->n + 1);
		bool has_sum = r == 0;
		if (xml_next(x) != X_TEXT)
			return fail(ret_error, -EBADMSG, "range %zu: no blocks", b->n + 1);
		char text[64];
		uint64_t first, last;
		if (!text_copy(x->s, x->n, text, sizeof(text)) || parse_blocks(text, &first, &last) < 0)
			return fail(ret_error, -EBADMSG, "range %zu: not FIRST-LAST block numbers", b->n + 1);
		if (xml_next(x) != X_CLOSE || !tok_is(x, "Range"))
			return fail(ret_error, -EBADMSG, "range %zu: no </Range>", b->n + 1);
		if (first > last)
			return fail(ret_error, -EBADMSG, "range %zu: first block %" PRIu64 " after last %" PRIu64, b->n + 1,
				    first, last);
		if (last >= b->blocks)
			return fail(ret_error, -EBADMSG, "range %zu: block %" PRIu64 " is past the image's %" PRIu64 " blocks",
				    b->n + 1, last, b->blocks);
		if (first < next_block)
			return fail(ret_error, -EBADMSG, "range %zu: blocks %" PRIu64 "-%" PRIu64 " overlap or come before the range before it",
				    b->n + 1, first, last);
		if (b->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct bmap_range *nr = reallocarray(b->range, ncap, sizeof(*nr));
			if (!nr)
				return -ENOMEM;
			b->range = nr, cap = ncap;
		}
		/* last < blocks = ceil(image_size / block_size): these products fit. */
		struct bmap_range *br = &b->range[b->n++];
		*br = (struct bmap_range){ .start = first * b->block_size };
		uint64_t end = (last + 1) * b->block_size;
		br->len = (end > b->image_size ? b->image_size : end) - br->start;
		if (has_sum && sha256) {
			if (hex_digest(sum, br->sha256) < 0)
				return fail(ret_error, -EBADMSG, "range %zu: chksum is not a SHA-256 (64 hex digits)", b->n);
			br->has_sha256 = true;
		}
		mapped += last - first + 1;
		b->mapped_bytes += br->len;
		next_block = last + 1;
	}
	if (mapped != b->mapped_blocks)
		return fail(ret_error, -EBADMSG, "the ranges hold %" PRIu64 " blocks, MappedBlocksCount says %" PRIu64, mapped,
			    b->mapped_blocks);
	return 0;
}

/* BmapFileChecksum: the SHA-256 of the file with its own 64 digits written as '0'. */
static int check_file_sum(const char *text, size_t len, const char *sum, char **ret_error)
{
	uint8_t want[32], got[32];
	if (hex_digest(sum, want) < 0)
		return fail(ret_error, -EBADMSG, "BmapFileChecksum is not a SHA-256");
	const char *at = find(text, text + len, sum);
	if (!at)
		return -EBADMSG;
	_cleanup_free_ char *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len);
	memset(copy + (at - text), '0', 64);
	int r = sha256_of(copy, len, got);
	if (r < 0)
		return r;
	if (memcmp(want, got, 32) != 0)
		return fail(ret_error, -EBADMSG, "BmapFileChecksum does not match the file (changed or damaged)");
	return 0;
}

static int parse(const char *text, size_t len, struct bmap *b, char **ret_error)
{
	struct xml x = { .p = text, .end = text + len };
	enum xml_tok t;
	while ((t = xml_next(&x)) == X_TEXT)
		;
	if (t != X_OPEN || !tok_is(&x, "bmap"))
		return fail(ret_error, -EBADMSG, "no <bmap> element");
	char version[16];
	if (attr_get(x.attrs, x.attrs_n, "version", version, sizeof(version)) < 0)
		return fail(ret_error, -EBADMSG, "<bmap> has no version");
	uint64_t major = 0, minor = 0;
	char *dot = strchr(version, '.');
	if (!dot || (*dot = '\0', parse_u64(version, &major) < 0) || parse_u64(dot + 1, &minor) < 0)
		return fail(ret_error, -EBADMSG, "version is not MAJOR.MINOR");
	if (major > 2)
		return fail(ret_error, -EOPNOTSUPP, "format version %" PRIu64 ".%" PRIu64 " is newer than 2.x", major, minor);
	bool v2 = major == 2 || (major == 1 && minor == 4);

	uint64_t hv[ARRAY_SIZE(header_names)] = { 0 };
	bool have[ARRAY_SIZE(header_names)] = { false }, have_map = false, sha256 = false;
	char cs_type[32] = "", file_sum[80] = "";
	for (;;) {
		t = xml_next(&x);
		if (t == X_TEXT)
			continue;
		if (t == X_CLOSE && tok_is(&x, "bmap"))
			break;
		if (t == X_EMPTY)
			continue;
		if (t != X_OPEN)
			return fail(ret_error, -EBADMSG, "not well-formed (an element or </bmap> expected)");
		if (tok_is(&x, "BlockMap")) {
			if (have_map)
				return fail(ret_error, -EBADMSG, "two BlockMap elements");
			for (size_t i = 0; i < ARRAY_SIZE(header_names); i++)
				if (!have[i])
					return fail(ret_error, -EBADMSG, "no %s before BlockMap", header_names[i]);
			b->image_size = hv[0], b->block_size = hv[1], b->blocks = hv[2], b->mapped_blocks = hv[3];
			if (b->block_size < 512 || b->block_size > (1u << 20) || b->block_size % 512)
				return fail(ret_error, -EBADMSG, "BlockSize %" PRIu64 " is not a multiple of 512 up to 1 MiB",
					    b->block_size);
			if (b->image_size > (UINT64_C(1) << 56))
				return fail(ret_error, -EBADMSG, "ImageSize %" PRIu64 " is past 64 PiB", b->image_size);
			if (b->blocks != (b->image_size + b->block_size - 1) / b->block_size)
				return fail(ret_error, -EBADMSG, "BlocksCount %" PRIu64 " does not match ImageSize %" PRIu64,
					    b->blocks, b->image_size);
			if (b->mapped_blocks > b->blocks)
				return fail(ret_error, -EBADMSG, "MappedBlocksCount is more than BlocksCount");
			sha256 = v2 && STREQ(cs_type, "sha256");
			int r = parse_ranges(&x, b, sha256, ret_error);
			if (r < 0)
				return r;
			have_map = true;
			continue;
		}
		/* A simple element: its name, its text, its end tag. Unknown ones are skipped. */
		char name[32], val[80] = "";
		if (x.n >= sizeof(name))
			return fail(ret_error, -EBADMSG, "an element name is too long");
		memcpy(name, x.s, x.n);
		name[x.n] = '\0';
		t = xml_next(&x);
		if (t == X_TEXT) {
			if (!text_copy(x.s, x.n, val, sizeof(val)))
				return fail(ret_error, -EBADMSG, "%s: the value is too long", name);
			t = xml_next(&x);
		}
		if (t != X_CLOSE || !tok_is(&x, name))
			return fail(ret_error, -EBADMSG, "%s: no </%s>", name, name);
		for (size_t i = 0; i < ARRAY_SIZE(header_names); i++)
			if (STREQ(name, header_names[i])) {
				if (have[i])
					return fail(ret_error, -EBADMSG, "two %s elements", name);
				if (parse_u64(val, &hv[i]) < 0)
					return fail(ret_error, -EBADMSG, "%s: '%s' is not a whole number", name, val);
				have[i] = true;
			}
		if (STREQ(name, "ChecksumType"))
			snprintf(cs_type, sizeof(cs_type), "%s", val);
		else if (STREQ(name, "BmapFileChecksum"))
			snprintf(file_sum, sizeof(file_sum), "%s", val);
	}
	if (!have_map)
		return fail(ret_error, -EBADMSG, "no BlockMap");
	if (v2 && *file_sum && STREQ(cs_type, "sha256"))
		return check_file_sum(text, len, file_sum, ret_error);
	return 0;
}

int bmap_parse(const char *text, size_t len, struct bmap *ret, char **ret_error)
{
	struct bmap b = { 0 };
	int r = parse(text, len, &b, ret_error);
	if (r < 0) {
		bmap_done(&b);
		if (r == -EBADMSG && ret_error && !*ret_error)
			(void)fail(ret_error, r, "not a bmap");
		return r;
	}
	*ret = b;
	return 0;
}

int bmap_load(const char *path, struct bmap *ret, char **ret_error)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = read_file(path, BMAP_MAX_FILE, &text, &len);
	if (r < 0)
		return r == -EFBIG ? fail(ret_error, r, "larger than %u MiB", BMAP_MAX_FILE >> 20) : r;
	return bmap_parse(text, len, ret, ret_error);
}

void bmap_done(struct bmap *b)
{
	free(b->range);
	*b = (struct bmap){ 0 };
}
