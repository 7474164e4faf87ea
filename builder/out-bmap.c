/* NAME.img.bmap: bmaptool's block map of the image (format 2.0, SHA-256 per range), for
 * `bmaptool copy` and our flash. Metadata only, no image bytes: 0644 like SHA256SUMS. */
#include "bmap.h"
#include "build.h"
#include "log.h"
#include "manifest.h"
#include "progress.h"
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>

static int bmap_progress(void *ctx, uint64_t done, uint64_t total)
{
	progress_update(ctx, done, total);
	return build_interrupted() ? -EINTR : 0;
}

static void bmap_blocks_freep(struct bmap_blocks **m) { bmap_blocks_free(*m); }

static int bmap_write(struct build *b, const struct output_ctx *o)
{
	(void)o;
	_cleanup_free_ char *name = strdupf("%s.img.bmap", b->p->name), *path = NULL, *text = NULL;
	if (!name || !(path = strdupf("%s/%s", b->tmp_dir, name)))
		return -ENOMEM;
	_cleanup_close_ int fd = open(b->image, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_errno(-errno, "cannot open '%s'", b->image);
	_cleanup_(bmap_blocks_freep) struct bmap_blocks *m = NULL;
	struct progress pr;
	progress_start(&pr, name);
	int r = bmap_create(fd, bmap_progress, &pr, &m);
	progress_end(&pr);
	if (r == -EINTR)
		return r;
	if (r < 0)
		return log_errno(r, "cannot map the data of '%s'", b->image);
	size_t len = 0;
	r = bmap_format(m, &text, &len);
	if (r == 0)
		r = write_file_atomic(path, text, len, 0644);
	if (r < 0)
		return log_errno(r, "cannot write '%s'", path);
	log_info("bmap: %zu ranges, %" PRIu64 " of %" PRIu64 " blocks mapped", m->n, m->mapped, m->blocks);
	return manifest_add_artifact(b, name, "bmap", NULL);
}

const struct output_type out_bmap = {
	.name = "bmap",
	.write = bmap_write,
};
