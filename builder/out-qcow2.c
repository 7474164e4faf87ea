/* NAME.qcow2: the image converted by `qemu-img convert -O qcow2` (zero clusters are left out),
 * for QEMU and Proxmox (`qm disk import VMID NAME.qcow2 STORAGE`, docs/profiles.md). Written to
 * a temp file made 0600 first (qemu-img opens it in place) and renamed when complete: it holds
 * the image's bytes, first-boot secrets included. */
#include "build.h"
#include "log.h"
#include "manifest.h"
#include "out-file.h"
#include "run.h"
#include "util.h"

#include <sys/stat.h>

static int qcow2_write(struct build *b, const struct output_ctx *o)
{
	(void)o;
	_cleanup_free_ char *name = strdupf("%s.qcow2", b->p->name), *prog = NULL;
	if (!name)
		return -ENOMEM;
	if (find_program("qemu-img", &prog) < 0) {
		log_error("'qemu-img' not found: output 'qcow2' needs it (install package 'qemu-utils', or run 'make deps')");
		return -ENOENT;
	}
	_cleanup_(out_file_done) struct out_file f = { .fd = -1 };
	int r = out_file_open(b, name, 0600, &f);
	if (r < 0)
		return log_errno(r, "cannot create a temp file for '%s/%s'", b->tmp_dir, name);
	/* -f raw: the image is never probed for another format. */
	char *argv[] = { "qemu-img", "convert", "-f", "raw", "-O", "qcow2", b->image, f.tmp, NULL };
	r = build_run(b, argv);
	if (r < 0)
		return r; /* build_run said why */
	/* qemu-img wrote through the name: it must still be our 0600 file, not one it made anew. */
	struct stat ours, now;
	if (fstat(f.fd, &ours) < 0 || lstat(f.tmp, &now) < 0)
		return log_errno(-errno, "cannot check '%s'", f.tmp);
	if (ours.st_dev != now.st_dev || ours.st_ino != now.st_ino) {
		log_error("'%s' was replaced while qemu-img wrote it", f.tmp);
		return -EIO;
	}
	r = out_file_commit(&f, NULL);
	if (r < 0)
		return log_errno(r, "cannot write '%s/%s'", b->tmp_dir, name);
	return manifest_add_artifact(b, name, "qcow2", NULL);
}

const struct output_type out_qcow2 = {
	.name = "qcow2",
	.write = qcow2_write,
};
