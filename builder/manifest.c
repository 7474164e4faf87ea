/* manifest.json (what went in) and SHA256SUMS (what came out). */
#include "manifest.h"
#include "artifacts.h"
#include "hash-file.h"
#include "hash.h"
#include "firstboot-install.h"
#include "log.h"
#include "npm-trees.h"
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
		if (b->plan.table->type_byte) /* MBR: what the kernel and blkid call its PARTUUID */
			snprintf(uuid, sizeof(uuid), "%08" PRIx32 "-%02zx", b->plan.layout.disk_id, i + 1);
		else
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

/* Secrets in the manifest: none. The firstboot section is copied with every secret value
 * replaced by "(secret) sha256:HEX" (present, and which one, without the value). Secret is
 * what pmoves-firstboot's schema marks "writeOnly" (a files element's content when it says
 * "secret": true: its "if"/"then"), and any key whose name holds one of the words below, as
 * pmoves-firstboot's own scrubber takes them (docs/firstboot.md). Without the schema every
 * string in the section counts as secret. */
static const char *const secret_words[] = { "auth_key", "password", "token", "credentials" };

static json_object *secret_marker(json_object *v)
{
	char hex[65];
	const char *text = json_object_is_type(v, json_type_string) ? json_object_get_string(v)
								     : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	size_t len = json_object_is_type(v, json_type_string) ? (size_t)json_object_get_string_len(v) : strlen(text);
	if (sha256_hex_of(text, len, hex) < 0)
		return json_object_new_string("(secret)");
	_cleanup_free_ char *s = strdupf("(secret) sha256:%s", hex);
	return s ? json_object_new_string(s) : NULL;
}

static json_object *schema_get(json_object *node, const char *key)
{
	json_object *v = NULL;
	return json_object_is_type(node, json_type_object) && json_object_object_get_ex(node, key, &v) ? v : NULL;
}

static bool schema_write_only(json_object *node)
{
	return json_object_get_boolean(schema_get(node, "writeOnly"));
}

/* NODE's "if" holds for the object V: its required keys are there and its "const"s match. */
static bool schema_if_holds(json_object *node, json_object *v)
{
	json_object *cond = schema_get(node, "if");
	if (!cond || !json_object_is_type(v, json_type_object))
		return false;
	json_object *req = schema_get(cond, "required");
	for (size_t i = 0; req && i < json_object_array_length(req); i++)
		if (!json_object_object_get_ex(v, json_object_get_string(json_object_array_get_idx(req, i)), NULL))
			return false;
	json_object *props = schema_get(cond, "properties");
	if (!props)
		return true;
	json_object_object_foreach(props, k, c) {
		json_object *want = schema_get(c, "const"), *got = NULL;
		if (want && json_object_object_get_ex(v, k, &got) && !json_object_equal(want, got))
			return false;
	}
	return true;
}

static bool secret_name(const char *key, json_object *v)
{
	if (json_object_is_type(v, json_type_boolean))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(secret_words); i++)
		if (strstr(key, secret_words[i]))
			return true;
	return false;
}

/* A copy of V, the value NODE of the schema describes, without its secrets. ALL: no schema,
 * every string is secret. NULL when out of memory. */
static json_object *redact(json_object *v, json_object *node, bool all)
{
	if (schema_write_only(node) || (all && json_object_is_type(v, json_type_string)))
		return secret_marker(v);
	if (json_object_is_type(v, json_type_array)) {
		json_object *a = json_object_new_array(), *items = schema_get(node, "items");
		for (size_t i = 0; a && i < json_object_array_length(v); i++) {
			json_object *e = redact(json_object_array_get_idx(v, i), items, all);
			if (!e || json_object_array_add(a, e) < 0) {
				json_object_put(e);
				json_object_put(a);
				return NULL;
			}
		}
		return a;
	}
	if (!json_object_is_type(v, json_type_object))
		return json_object_get(v);
	json_object *o = json_object_new_object(), *props = schema_get(node, "properties"),
		    *more = schema_get(node, "additionalProperties"),
		    *then = schema_if_holds(node, v) ? schema_get(schema_get(node, "then"), "properties") : NULL;
	json_object_object_foreach(v, key, val) {
		if (!o)
			break;
		json_object *child = schema_get(props, key);
		if (!child && json_object_is_type(more, json_type_object))
			child = more;
		json_object *e = secret_name(key, val) || schema_write_only(schema_get(then, key)) ? secret_marker(val)
												      : redact(val, child, all);
		if (!e || json_object_object_add(o, key, e) < 0) {
			json_object_put(e);
			json_object_put(o);
			return NULL;
		}
	}
	return o;
}

/* The resolved profile as the manifest records it: the firstboot section without secrets. */
static json_object *profile_for_manifest(const struct profile *p)
{
	json_object *copy = NULL, *fb = NULL;
	if (json_object_deep_copy(p->json, &copy, NULL) < 0)
		return NULL;
	if (!json_object_object_get_ex(copy, "firstboot", &fb))
		return copy;
	json_object *schema = NULL;
	if (firstboot_schema(&schema) < 0)
		log_info("manifest: without pmoves-firstboot's schema, every string of the firstboot section is "
			 "recorded as a secret");
	json_object *clean = redact(fb, schema, !schema);
	json_object_put(schema);
	if (!clean || json_object_object_add(copy, "firstboot", clean) < 0) {
		json_object_put(clean);
		json_object_put(copy);
		return NULL;
	}
	return copy;
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
	json_object *recorded = profile_for_manifest(p);
	if (!recorded) {
		json_object_put(m);
		json_object_put(rootfs);
		json_object_put(table);
		json_object_put(boot);
		return -ENOMEM;
	}
	json_object_object_add(m, "profile", recorded);
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
	/* The npm trees in the root filesystem (npm-trees.h): what each lockfile pins. */
	json_object *npm = npm_trees_manifest(p);
	if (npm)
		json_object_object_add(m, "npm", npm);
	/* The sandbox guest baked in (sandbox-bake.c): its profile and files. */
	if (b->sandbox_guest)
		json_object_object_add(m, "sandbox_guest", json_object_get(b->sandbox_guest));
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
