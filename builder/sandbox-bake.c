/* A sandbox guest baked into the image, for the sandbox first-boot step (firstboot/
 * step-sandbox.c, docs/sandbox.md): the profile's "sandbox_guest" names a profile whose outputs
 * include "microvm" (out-microvm.c), for the same architecture (profile.c checks it).
 * pmoves-image builds it, as a build of its own (this program, the same rootfs cache; its log
 * into this build's), and puts the output's files (rootfs.ext4, vmlinuz, initrd.img and, on
 * x86_64, vmlinux) into /usr/lib/pmoves/sandbox, holes kept; pmoves-sandbox built for the
 * image's architecture goes into /usr/bin. manifest.json lists the guest's files with their
 * SHA-256s. */
#include "build.h"
#include "firstboot-install.h"
#include "log.h"
#include "profile.h"
#include "stages.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#define GUEST_DIR "/usr/lib/pmoves/sandbox"
#define GUEST_FILES 8 /* at most, from the guest's manifest */

/* The guest's profile, as profile.c found and checked it. */
static int guest_load(struct build *b, struct profile **ret)
{
	_cleanup_free_ char *err = NULL;
	int r = profile_load(b->p->guest_path, ret, &err);
	if (r < 0)
		log_error("%s: .sandbox_guest: %s", b->p->path, err ? err : strerror(-r));
	return r;
}

/* The guest's files in its bundle directory BUNDLE, as its manifest lists them
 * ("BUNDLE/NAME"): {"file": GUEST_DIR/NAME, "sha256"} into *RET (an array). */
static int guest_files(const char *man_path, const char *bundle, json_object **ret)
{
	size_t blen = strlen(bundle);
	_cleanup_free_ char *text = NULL;
	int r = read_file(man_path, 16u << 20, &text, NULL);
	if (r < 0)
		return log_errno(r, "cannot read the guest's '%s'", man_path);
	json_object *m = json_tokener_parse(text), *arts = NULL;
	json_object *files = json_object_new_array();
	if (!m || !files || !json_object_object_get_ex(m, "artifacts", &arts) || !json_object_is_type(arts, json_type_array)) {
		json_object_put(m);
		json_object_put(files);
		log_error("the guest's '%s' has no \"artifacts\"", man_path);
		return -EBADMSG;
	}
	for (size_t i = 0; r == 0 && i < json_object_array_length(arts); i++) {
		json_object *a = json_object_array_get_idx(arts, i), *e;
		const char *file = json_object_get_string(json_object_object_get(a, "file"));
		const char *sha = json_object_get_string(json_object_object_get(a, "sha256"));
		if (!file || !sha || strncmp(file, bundle, blen) != 0 || file[blen] != '/')
			continue;
		_cleanup_free_ char *to = NULL;
		if (json_object_array_length(files) >= GUEST_FILES || asprintf(&to, GUEST_DIR "%s", file + blen) < 0 ||
		    !(e = json_object_new_object()) || json_object_array_add(files, e) < 0 ||
		    json_object_object_add(e, "file", json_object_new_string(to)) < 0 ||
		    json_object_object_add(e, "sha256", json_object_new_string(sha)) < 0)
			r = -ENOMEM;
	}
	json_object_put(m);
	if (r < 0) {
		json_object_put(files);
		return r;
	}
	*ret = files;
	return 0;
}

/* pmoves-sandbox for the image's architecture, beside its pmoves-firstboot. */
static int install_launcher(struct build *b)
{
	_cleanup_free_ char *dir = NULL, *bin = NULL, *data = NULL;
	size_t len;
	int r = firstboot_payload_dir(b->p->arch, &dir);
	if (r < 0 || asprintf(&bin, "%s/pmoves-sandbox", dir) < 0)
		return r < 0 ? r : -ENOMEM; /* the firstboot stage said why */
	r = firstboot_check_binary(b, bin);
	if (r < 0)
		return r;
	if ((r = read_file(bin, 64u << 20, &data, &len)) < 0)
		return log_errno(r, "cannot read '%s' ('make' builds it)", bin);
	if ((r = tree_write_file(b, "/usr/bin/pmoves-sandbox", data, len, 0755)) < 0)
		return log_errno(r, "cannot write '/usr/bin/pmoves-sandbox' in the image");
	return 0;
}

int stage_sandbox(struct build *b)
{
	if (!b->p->guest_path)
		return 0;
	struct profile *g = NULL;
	int r = guest_load(b, &g);
	if (r < 0)
		return r;
	_cleanup_free_ char *self = realpath("/proc/self/exe", NULL), *out = NULL, *dir = NULL, *man = NULL, *bundle = NULL;
	if (!self)
		r = log_errno(-errno, "cannot find this program (/proc/self/exe)");
	else if (asprintf(&out, "%s/.sandbox-guest", b->tmp_dir) < 0 || asprintf(&dir, "%s/%s", out, g->name) < 0 ||
		 asprintf(&man, "%s/manifest.json", dir) < 0 || asprintf(&bundle, "%s.microvm", g->name) < 0)
		r = -ENOMEM;
	if (r == 0) {
		log_info("sandbox: building the guest '%s'", g->path);
		char *argv[] = { self, "build", (char *)g->path, "-o", out, b->refresh ? "--refresh" : NULL, NULL };
		r = build_run_shown(b, argv, "  guest: ");
	}
	_cleanup_close_ int fd = -1;
	json_object *files = NULL;
	if (r == 0 && (fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		_cleanup_close_ int vm = openat(fd, bundle, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (vm < 0)
			r = log_errno(-errno, "the guest's build has no directory '%s/%s'", dir, bundle);
		else if ((r = tree_mkdir_p(b, GUEST_DIR, 0755)) < 0)
			log_errno(r, "cannot create '%s' in the image", GUEST_DIR);
		else if ((r = tree_copy_dir(b, "sandbox guest", vm, GUEST_DIR)) == 0)
			r = guest_files(man, bundle, &files);
	} else if (r == 0) {
		r = log_errno(-errno, "cannot open the guest's build '%s'", dir);
	}
	if (out) {
		int rm = rm_rf(out); /* not an output of this build */
		if (rm < 0 && r == 0)
			r = log_errno(rm, "cannot remove '%s'", out);
	}
	if (r == 0)
		r = install_launcher(b);
	if (r == 0) {
		json_object *o = json_object_new_object();
		if (!o || json_object_object_add(o, "profile", json_object_new_string(g->name)) < 0 ||
		    json_object_object_add(o, "files", json_object_get(files)) < 0)
			r = -ENOMEM;
		json_object_put(b->sandbox_guest);
		b->sandbox_guest = o;
		if (r == 0)
			log_info("sandbox: the guest '%s' in %s, pmoves-sandbox in /usr/bin", g->name, GUEST_DIR);
	}
	json_object_put(files);
	profile_free(g);
	return r;
}
