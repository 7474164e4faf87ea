/* Models baked into the image from a local Ollama store: the profile's "ollama_store" (a
 * directory on the build host, relative to the working directory: the OLLAMA_MODELS of a
 * machine that pulled them) and firstboot.ollama's "models" ({name, digest}). Every configured
 * model must be in the store; its manifest must have the pinned digest, and every blob it lists
 * is copied into the image's store (firstboot.ollama.models_dir, default
 * /var/lib/ollama/models) and checked there, size and SHA-256, before the manifest is. The
 * ollama step checks them once more on the machine before Ollama starts. Nothing is read
 * outside the store (http_open_beneath: no "..", no symlink out). */
#include "hash-file.h"
#include "hash.h"
#include "http-serve.h"
#include "log.h"
#include "ollama-store.h"
#include "stages.h"
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MODELS_DIR "/var/lib/ollama/models"

/* REL ("/manifests/...", "/blobs/...") of the store, a regular file: its fd, or -errno
 * logged. */
static int store_open(int store, const char *dir, const char *rel)
{
	int fd = http_open_beneath(store, rel, false);
	if (fd == -ENOENT)
		return fd;
	if (fd < 0)
		return log_errno(fd, "ollama_store: cannot read '%s%s'%s", dir, rel,
				 fd == -EINVAL ? " (not a regular file)" : fd == -EXDEV || fd == -ELOOP ? " (it leads out of the store)" : "");
	return fd;
}

/* Blob HEX of SIZE bytes from the store into the image at BLOBS/sha256-HEX, checked there:
 * 0, or -errno logged (nothing of it left in the image). */
static int blob_bake(struct build *b, int store, const char *dir, const char *name, const char *blobs, const char *hex,
		     uint64_t size)
{
	_cleanup_free_ char *rel = strdupf("/blobs/sha256-%s", hex), *dst = strdupf("%s/sha256-%s", blobs, hex);
	if (!rel || !dst)
		return -ENOMEM;
	_cleanup_close_ int in = store_open(store, dir, rel);
	if (in == -ENOENT)
		return log_errno(in, "model '%s': its blob sha256:%s is not in the store '%s'", name, hex, dir);
	if (in < 0)
		return in;
	struct stat st;
	if (fstat(in, &st) < 0)
		return log_errno(-errno, "cannot stat '%s%s'", dir, rel);
	if ((uint64_t)st.st_size != size) {
		log_error("model '%s': blob sha256:%s in '%s' has %lld bytes, its manifest says %" PRIu64, name, hex, dir,
			  (long long)st.st_size, size);
		return -EBADMSG;
	}
	_cleanup_close_ int out = tree_open(b, dst, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
	if (out < 0)
		return log_errno(out, "cannot create '%s' in the image", dst);
	char got[65];
	int r = copy_fd_range(in, 0, out, 0, size);
	if (r == 0)
		r = sha256_fd(out, got);
	struct timespec t[2] = { { .tv_sec = (time_t)b->epoch }, { .tv_sec = (time_t)b->epoch } };
	if (r == 0 && STREQ(got, hex) && (fchmod(out, 0644) < 0 || futimens(out, t) < 0))
		r = -errno;
	if (r < 0 || !STREQ(got, hex)) {
		_cleanup_free_ char *path = build_tree_path(b, dst);
		if (path)
			unlink(path);
		if (r < 0)
			return log_errno(r, "cannot copy blob sha256:%s of model '%s' into the image", hex, name);
		log_error("model '%s': blob sha256:%s in '%s' holds sha256:%s", name, hex, dir, got);
		return -EBADMSG;
	}
	return 0;
}

/* Model NAME pinned at DIGEST, from the store into the image's MODELS_DIR. */
static int model_bake(struct build *b, int store, const char *dir, const char *models_dir, const char *name,
		      const char *digest, uint64_t *ret_bytes)
{
	_cleanup_free_ char *shown = NULL, *rel = NULL, *rel_abs = NULL, *dst = NULL, *blobs = NULL, *text = NULL;
	int r = ollama_name(name, &shown, &rel);
	if (r < 0) {
		log_error("%s: firstboot.ollama.models: '%s' is not a model name", b->p->path, name);
		return r;
	}
	if (!(rel_abs = strdupf("/%s", rel)) || !(dst = strdupf("%s/%s", models_dir, rel)) ||
	    !(blobs = strdupf("%s/blobs", models_dir)))
		return -ENOMEM;
	_cleanup_close_ int fd = store_open(store, dir, rel_abs);
	if (fd == -ENOENT) {
		log_error("model '%s' is not in the ollama_store '%s' (no '%s'): `ollama pull %s` there first", shown, dir, rel, shown);
		return fd;
	}
	size_t len;
	if (fd < 0 || (r = read_fd(fd, OLLAMA_MANIFEST_MAX, &text, &len)) < 0)
		return fd < 0 ? fd : log_errno(r, "cannot read '%s/%s'", dir, rel);
	char hex[65];
	if ((r = sha256_hex_of(text, len, hex)) < 0)
		return r;
	if (!STREQ(hex, digest)) {
		log_error("model '%s': its manifest in '%s' is sha256:%s, not the pinned sha256:%s", shown, dir, hex, digest);
		return -EBADMSG;
	}
	struct ollama_manifest m;
	if ((r = ollama_manifest_parse(text, &m)) < 0) {
		log_error("model '%s': '%s/%s' is not a manifest (config and layers, each with a sha256 digest and a size, %d at most)",
			  shown, dir, rel, OLLAMA_BLOBS_MAX);
		return r;
	}
	if ((r = tree_mkdir_p(b, blobs, 0755)) < 0)
		return log_errno(r, "cannot create '%s' in the image", blobs);
	*ret_bytes = len;
	for (size_t i = 0; i < m.n; i++) {
		bool again = false;
		for (size_t j = 0; j < i && !again; j++)
			again = STREQ(m.hex[j], m.hex[i]);
		if (!again && (r = blob_bake(b, store, dir, shown, blobs, m.hex[i], m.size[i])) < 0)
			return r;
		*ret_bytes += again ? 0 : m.size[i];
	}
	/* The manifest last: a model is in the image's store only with all its blobs. */
	_cleanup_free_ char *parent = strdupf("%.*s", (int)(strrchr(dst, '/') - dst), dst);
	if (!parent)
		return -ENOMEM;
	if ((r = tree_mkdir_p(b, parent, 0755)) < 0)
		return log_errno(r, "cannot create '%s' in the image", parent);
	_cleanup_close_ int out = tree_open(b, dst, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
	struct timespec t[2] = { { .tv_sec = (time_t)b->epoch }, { .tv_sec = (time_t)b->epoch } };
	if (out < 0 || write_full(out, text, len) < 0 || fchmod(out, 0644) < 0 || futimens(out, t) < 0)
		return log_errno(out < 0 ? out : -errno, "cannot write '%s' in the image", dst);
	return 0;
}

int stage_ollama(struct build *b)
{
	json_object *v, *ollama = NULL, *models = NULL;
	if (!json_object_object_get_ex(b->p->json, "ollama_store", &v))
		return 0;
	const char *dir = json_object_get_string(v);
	if (b->p->firstboot && json_object_object_get_ex(b->p->firstboot, "ollama", &ollama))
		json_object_object_get_ex(ollama, "models", &models);
	size_t n = models ? json_object_array_length(models) : 0;
	if (n == 0) {
		log_error("%s: ollama_store '%s' is given, but firstboot.ollama names no models to bake from it", b->p->path, dir);
		return -EINVAL;
	}
	const char *models_dir = DEFAULT_MODELS_DIR;
	if (json_object_object_get_ex(ollama, "models_dir", &v))
		models_dir = json_object_get_string(v);
	_cleanup_close_ int store = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (store < 0)
		return log_errno(-errno, "%s: ollama_store: cannot open the directory '%s'", b->p->path, dir);
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(models, i), *name, *digest;
		if (!json_object_object_get_ex(m, "name", &name) || !json_object_object_get_ex(m, "digest", &digest))
			return log_errno(-EINVAL, "%s: firstboot.ollama.models[%zu]: a name and a digest", b->p->path, i);
		uint64_t bytes = 0;
		int r = model_bake(b, store, dir, models_dir, json_object_get_string(name), json_object_get_string(digest), &bytes);
		if (r < 0)
			return r;
		log_info("ollama: '%s' baked into '%s': %" PRIu64 " bytes, every blob's sha256 verified", json_object_get_string(name),
			 models_dir, bytes);
		total += bytes;
	}
	log_info("ollama: %zu model%s baked from '%s' (%" PRIu64 " MiB)", n, n == 1 ? "" : "s", dir, total >> 20);
	return 0;
}
