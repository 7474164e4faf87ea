/* manifest.json (what went in) and SHA256SUMS (what came out). */
#include "manifest.h"
#include "artifacts.h"
#include "hash-file.h"
#include "hash.h"
#include "firstboot-install.h"
#include "log.h"
#include "progress.h"
#include "rootfs.h"
#include "run.h"
#include "stages.h"
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

int manifest_add_artifact(struct build *b, const char *file, const char *kind, const char *sha256)
{
	if (!b->artifacts && !(b->artifacts = json_object_new_array()))
		return -ENOMEM;
	json_object *a = json_object_new_object();
	if (!a)
		return -ENOMEM;
	json_object_object_add(a, "file", json_object_new_string(file));
	json_object_object_add(a, "kind", json_object_new_string(kind));
	if (sha256)
		json_object_object_add(a, "sha256", json_object_new_string(sha256));
	json_object_array_add(b->artifacts, a);
	return 0;
}

static int hash_progress(void *ctx, uint64_t done, uint64_t total)
{
	progress_update(ctx, done, total);
	return build_interrupted() ? -EINTR : 0;
}

static json_object *str(const char *s) { return json_object_new_string(s ? s : ""); }

static json_object *tool_versions(void)
{
	json_object *o = json_object_new_object();
	_cleanup_free_ char *out = NULL;
	char *argv[] = { "dpkg-query", "-W", "-f=${Package} ${Version}\\n", "e2fsprogs", "dosfstools",
			 "mtools", "mmdebstrap", NULL };
	struct run_opts ro = { .capture = &out };
	if (run_argv(argv, &ro) < 0 || !out)
		return o;
	char *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');
		if (sp && sp[1]) {
			*sp = '\0';
			json_object_object_add(o, line, json_object_new_string(sp + 1));
		}
	}
	json_object_object_add(o, "pmoves-image", json_object_new_string(PMOVES_VERSION));
	return o;
}

static json_object *partitions(const struct build *b)
{
	json_object *arr = json_object_new_array();
	for (size_t i = 0; i < b->plan.n; i++) {
		const struct plan_part *pp = &b->plan.parts[i];
		const struct table_entry *e = pp->entry;
		char type[37], uuid[37], fsid[40];
		uuid_format(e->type_guid, type);
		uuid_format(e->uuid, uuid);
		if (pp->fs)
			pp->fs->fs_id(pp, fsid);
		else
			fsid[0] = '\0';
		json_object *o = json_object_new_object();
		json_object_object_add(o, "number", json_object_new_int((int)i + 1));
		json_object_object_add(o, "name", str(pp->spec->name));
		json_object_object_add(o, "type", str(pp->spec->type));
		json_object_object_add(o, "type_guid", str(type));
		if (b->plan.table->type_byte) {
			char mbr[8];
			snprintf(mbr, sizeof(mbr), "0x%02x", e->mbr_type);
			json_object_object_add(o, "mbr_type", str(mbr));
		}
		json_object_object_add(o, "uuid", str(uuid));
		json_object_object_add(o, "start", json_object_new_int64((int64_t)e->start));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)e->size));
		json_object_object_add(o, "fs", str(pp->spec->fs));
		json_object_object_add(o, "fs_uuid", str(fsid));
		json_object_object_add(o, "label", str(pp->spec->label));
		if (pp->spec->mount)
			json_object_object_add(o, "mount", str(pp->spec->mount));
		json_object_array_add(arr, o);
	}
	return arr;
}

int stage_manifest(struct build *b)
{
	const struct profile *p = b->p;
	_cleanup_free_ char *sums = NULL, *profile_text = NULL, *sums_path = NULL, *man_path = NULL;
	size_t sums_len = 0;
	FILE *f = open_memstream(&sums, &sums_len);
	if (!f)
		return -ENOMEM;
	/* Checksums of every artifact. */
	for (size_t i = 0; b->artifacts && i < json_object_array_length(b->artifacts); i++) {
		json_object *a = json_object_array_get_idx(b->artifacts, i);
		const char *file = json_object_get_string(json_object_object_get(a, "file"));
		_cleanup_free_ char *path = NULL;
		json_object *known = json_object_object_get(a, "sha256");
		char hex[65] = "";
		struct stat st;
		if (asprintf(&path, "%s/%s", b->tmp_dir, file) < 0) {
			fclose(f);
			return -ENOMEM;
		}
		int r = 0;
		if (known) {
			snprintf(hex, sizeof(hex), "%s", json_object_get_string(known));
		} else {
			_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
			struct progress pr;
			progress_start(&pr, file);
			r = fd < 0 ? -errno : sha256_fd_progress(fd, hex, hash_progress, &pr);
			progress_end(&pr);
		}
		if (r == -EINTR) {
			fclose(f);
			return r;
		}
		if (r < 0 || stat(path, &st) < 0) {
			fclose(f);
			return log_errno(r < 0 ? r : -errno, "cannot checksum '%s'", path);
		}
		json_object_object_add(a, "size", json_object_new_int64(st.st_size));
		if (!known)
			json_object_object_add(a, "sha256", json_object_new_string(hex));
		fprintf(f, "%s  %s\n", hex, file);
	}
	if (fclose(f) != 0)
		return -ENOMEM;

	char key[65], guid[37], id[16], psha[65];
	profile_text = json_canonical(p->json);
	if (!profile_text)
		return -ENOMEM;
	int r = sha256_hex_of(profile_text, strlen(profile_text), psha);
	if (r < 0)
		return r;
	_cleanup_strv_ char **extra = NULL;
	if (firstboot_packages(p->arch, &extra) < 0 || rootfs_cache_key(p, extra, key) < 0)
		key[0] = '\0';
	uuid_format(b->plan.layout.disk_guid, guid);
	snprintf(id, sizeof(id), "0x%08" PRIx32, b->plan.layout.disk_id);

	json_object *m = json_object_new_object(), *rootfs = json_object_new_object(), *table = json_object_new_object(),
		    *boot = json_object_new_object();
	json_object_object_add(m, "format", json_object_new_int(1));
	json_object_object_add(m, "name", str(p->name));
	json_object_object_add(m, "description", str(p->description));
	json_object_object_add(m, "arch", str(p->arch->name));
	json_object_object_add(m, "seed", str(b->seed));
	json_object_object_add(m, "source_date_epoch", json_object_new_int64((int64_t)b->epoch));
	json_object_object_add(m, "profile_sha256", str(psha));
	json_object_object_add(m, "profile", json_object_get(p->json));
	json_object_object_add(rootfs, "source", str(p->rootfs.source));
	json_object_object_add(rootfs, "cache_key", str(key));
	if (p->rootfs.sha256)
		json_object_object_add(rootfs, "sha256", str(p->rootfs.sha256));
	json_object_object_add(rootfs, "packages", json_object_get(b->packages));
	json_object_object_add(m, "rootfs", rootfs);
	json_object_object_add(table, "type", str(b->plan.table->name));
	json_object_object_add(table, "disk_guid", str(guid));
	json_object_object_add(table, "disk_id", str(id));
	json_object_object_add(table, "size", json_object_new_int64((int64_t)b->plan.layout.disk_size));
	json_object_object_add(m, "table", table);
	json_object_object_add(m, "partitions", partitions(b));
	json_object_object_add(boot, "loader", str(p->boot.loader));
	json_object_object_add(boot, "kernel", str(b->kernel_version));
	json_object_object_add(boot, "cmdline", str(p->boot.cmdline));
	json_object_object_add(m, "boot", boot);
	json_object_object_add(m, "tools", tool_versions());
	json_object_object_add(m, "artifacts", json_object_get(b->artifacts ? b->artifacts : json_object_new_array()));
	/* The profile's third-party artifacts (builder/artifacts.c); "artifacts" are the outputs. */
	json_object_object_add(m, "third_party", artifacts_manifest(p));
	b->manifest = m;

	const char *text = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
								     JSON_C_TO_STRING_NOSLASHESCAPE);
	_cleanup_free_ char *man_text = NULL;
	if (asprintf(&man_text, "%s\n", text) < 0 || asprintf(&man_path, "%s/manifest.json", b->tmp_dir) < 0 ||
	    asprintf(&sums_path, "%s/SHA256SUMS", b->tmp_dir) < 0)
		return -ENOMEM;
	r = write_file_atomic(man_path, man_text, strlen(man_text), 0644);
	if (r == 0)
		r = write_file_atomic(sums_path, sums, sums_len, 0644);
	if (r < 0)
		return log_errno(r, "cannot write the manifest");
	return 0;
}
