/* Fuzz harness: the request parsers of `pmoves-image serve` (builder/http-serve.c): the head's
 * end, the request line and header lines, the request target to a path (absolute-form,
 * percent-decoding, segments), the Range header against files of several sizes. Asserts what
 * the file lookup relies on: an accepted path starts with '/', has no empty, "." or ".."
 * segment and no NUL; an accepted range is inside the file and not empty.
 *
 * Input: the bytes a client sends (the head is what http_head_end finds in them). */
#include "fuzz.h"
#include "http-serve.h"

#include <inttypes.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static void check_path(const char *p)
{
	if (p[0] != '/')
		abort();
	for (const char *s = p + 1; *s;) {
		size_t n = strcspn(s, "/");
		if ((n == 0 && s[n]) || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			abort(); /* "//", "/./", "/../" (a trailing "/" is a directory, allowed) */
		s += n + (s[n] == '/');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long end = http_head_end((const char *)data, size);
	if (end < 0 && (end != -E2BIG || size < HTTP_HEAD_MAX))
		abort();
	if (end <= 0)
		return 0;
	if (end > HTTP_HEAD_MAX || (size_t)end > size)
		abort();
	static char head[HTTP_HEAD_MAX], path[HTTP_HEAD_MAX];
	memcpy(head, data, (size_t)end);
	struct http_request rq;
	int status = http_parse_request(head, (size_t)end, &rq);
	if (fuzz_verbose())
		fprintf(stderr, "http: head %ld bytes, status %d\n", end, status);
	if (status != 0 && status != 400 && status != 505)
		abort();
	if (status)
		return 0;
	if (!rq.method || !rq.target || (rq.minor != 0 && rq.minor != 1) || (rq.has_body && rq.keep_alive))
		abort();
	status = http_target_path(rq.target, path, sizeof(path));
	if (status != 0 && status != 400 && status != 414)
		abort();
	if (status == 0) {
		if (strlen(path) > strlen(rq.target) + 1)
			abort();
		check_path(path);
		if (fuzz_verbose())
			fprintf(stderr, "http: path '%s'\n", path);
	}
	static const uint64_t sizes[] = { 0, 1, 1000, UINT64_MAX / 2 };
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		uint64_t start = 0, len = 0;
		enum http_range_result r = http_parse_range(rq.range, sizes[i], &start, &len);
		if (r == HTTP_RANGE_OK && (len == 0 || start >= sizes[i] || len > sizes[i] - start))
			abort();
		if (r == HTTP_RANGE_OK && fuzz_verbose())
			fprintf(stderr, "http: range %" PRIu64 "+%" PRIu64 " of %" PRIu64 "\n", start, len, sizes[i]);
	}
	return 0;
}
