/* The helpers the steps share, each on its own: removing files under the root. */
#include "test-fb-lib.h"

/* stdout into a file while a helper prints (dry run), so that TAP's stdout stays clean. */
static int saved_stdout = -1;
static char capture_path[] = "/tmp/test-fb-sys-out-XXXXXX";

static void capture_start(void)
{
	fflush(stdout);
	int fd = mkstemp(capture_path);
	saved_stdout = dup(STDOUT_FILENO);
	if (fd < 0 || saved_stdout < 0 || dup2(fd, STDOUT_FILENO) < 0)
		abort();
	close(fd);
}

/* What was printed since capture_start(). Caller frees. */
static char *capture_end(void)
{
	fflush(stdout);
	if (dup2(saved_stdout, STDOUT_FILENO) < 0)
		abort();
	close(saved_stdout);
	char *text = t_read(capture_path, NULL);
	unlink(capture_path);
	memcpy(capture_path + strlen(capture_path) - 6, "XXXXXX", 6);
	return text ? text : strdup("");
}

static void test_remove(void)
{
	char *root = t_tree();
	fb_root_set(root);
	t_write(root, "etc/a/file", "x");
	tap_is_int(fb_remove("/etc/a/file"), 0, "remove: a file under the root");
	tap_ok(!t_exists(root, "etc/a/file") && t_exists(root, "etc/a"), "remove: the file is gone, its directory stays");
	tap_is_int(fb_remove("/etc/a/file"), 0, "remove: a file that is not there is fine");
	tap_is_int(fb_remove("/no/such/dir/file"), 0, "remove: nor is a missing directory");
	tap_is_int(fb_remove("/etc/a"), -EISDIR, "remove: a directory is refused");
	tap_is_int(fb_remove("etc/a/file"), -EINVAL, "remove: a relative path is refused");

	/* A symlink in the tree cannot lead outside it: /out -> the host's directory beside the
	 * tree resolves inside the root, where there is no such file. */
	char *outside = t_beside(root, "outside");
	t_write(outside, "victim", "keep me");
	char *link = t_strf("%s/out", root);
	if (symlink(outside, link) < 0)
		abort();
	tap_is_int(fb_remove("/out/victim"), 0, "remove: through a symlink that leaves the tree: nothing there");
	tap_ok(t_exists(outside, "victim"), "remove: the file outside the tree is untouched");

	t_write(root, "etc/b", "y");
	fb_dry_run_set(true);
	capture_start();
	int r = fb_remove("/etc/b");
	char *out = capture_end();
	fb_dry_run_set(false);
	tap_is_int(r, 0, "remove, dry run: 0");
	tap_is_str(out, "pmoves-firstboot: would remove /etc/b\n", "remove, dry run: says what it would remove");
	tap_ok(t_exists(root, "etc/b"), "remove, dry run: the file stays");
	free(out), free(link), free(outside);
	t_cleanup(root);
}

int main(void)
{
	test_remove();
	return tap_done();
}
