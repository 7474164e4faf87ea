/* Fuzz harness: the bmap reader of `pmoves-image flash` (lib/bmap-read.c): the XML
 * tokenizer, every number, the ranges' order and bounds, the chksum attributes, the
 * BmapFileChecksum. Asserts that what it accepts is what flash relies on: ranges sorted, not
 * overlapping, not empty, inside ImageSize, adding up to mapped_bytes.
 *
 * Input: the bmap file's text. */
#include "bmap-read.h"
#include "fuzz.h"

#include <inttypes.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bmap b = { 0 };
	char *why = NULL;
	int r = bmap_parse((const char *)data, size, &b, &why);
	if (fuzz_verbose())
		fprintf(stderr, "bmap: %d %s: %zu ranges, %" PRIu64 " bytes mapped\n", r, why ? why : "", b.n, b.mapped_bytes);
	if (r < 0 && !why && r != -ENOMEM)
		abort(); /* every refusal says why */
	if (r == 0) {
		uint64_t end = 0, sum = 0;
		for (size_t i = 0; i < b.n; i++) {
			const struct bmap_range *g = &b.range[i];
			if (g->len == 0 || g->start < end || g->start > b.image_size || g->len > b.image_size - g->start)
				abort();
			end = g->start + g->len;
			sum += g->len;
		}
		if (sum != b.mapped_bytes)
			abort();
	}
	free(why);
	bmap_done(&b);
	return 0;
}
