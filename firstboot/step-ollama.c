/* ollama: local models for the mesh and the tailnet, never for anything else.
 *
 *   - Ollama itself is an artifact (the release tarball, kind tar, target /usr, and on a Jetson
 *     Orin the JetPack overlay over it): without /usr/bin/ollama the step is pending;
 *   - a system user "ollama" (systemd-sysusers, /etc/sysusers.d/pmoves-ollama.conf; in the
 *     video and render groups for the GPU's devices), home /var/lib/ollama, the model store
 *     (OLLAMA_MODELS, "models_dir": put it on the data partition; never a system or shared
 *     directory) and what Ollama keeps in it (manifests/, blobs/) owned by it;
 *   - ollama.service as Ollama's installer writes it, OLLAMA_HOST the configured listen:port;
 *   - Ollama has no authentication: an nftables table of its own (/etc/pmoves/ollama.nft,
 *     loaded by pmoves-ollama-firewall.service, which ollama.service requires) accepts the
 *     port from loopback and the "allow" interfaces (the tailnet, the mesh) and drops it from
 *     every other; the step loads it and checks it is loaded;
 *   - models: each {name, digest}, the digest being the SHA-256 of the model's manifest, as
 *     /api/tags reports it. A model whose manifest is in the store (baked into the image) is
 *     checked there before Ollama sees it: the manifest's hash is the pin, every blob it lists
 *     (config and layers) has its size and its SHA-256. One that is not there is pulled
 *     (POST /api/pull) and checked against /api/tags. A wrong one is refused: its manifest
 *     goes (DELETE /api/delete for a pulled one) with the wrong blob and every other blob of
 *     it no other model in the store lists, and the step fails naming both hashes;
 *   - then, on the running system once it has booted: /api/tags lists every model with its
 *     pinned digest and a short /api/generate answers, which SERVED records (check wants it:
 *     a running Ollama is not the step done); and the GPU: a Jetson's L4T release and GPU
 *     device, else nvidia-smi's view; without a GPU Ollama runs on the CPU and the step ends
 *     degraded, saying so. */
#include "download.h"
#include "fb-guard.h"
#include "fb-step.h"
#include "firstboot.h"
#include "hash-file.h"
#include "hash.h"
#include "ollama-store.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#define OLLAMA "/usr/bin/ollama"
#define HOME_DIR "/var/lib/ollama"
#define SYSUSERS "/etc/sysusers.d/pmoves-ollama.conf"
#define UNIT "/etc/systemd/system/ollama.service"
#define FW_UNIT "/etc/systemd/system/pmoves-ollama-firewall.service"
#define NFT "/etc/pmoves/ollama.nft"
#define SERVED "/var/lib/pmoves/ollama/served" /* what the step last saw Ollama serve */
#define SERVICE "ollama.service"
#define FW_SERVICE "pmoves-ollama-firewall.service"
#define TABLE "pmoves_ollama"
#define USER "ollama"
#define DEFAULT_MODELS HOME_DIR "/models"
#define DEFAULT_LISTEN "0.0.0.0"
#define DEFAULT_PORT 11434
#define DEFAULT_PULL_TIMEOUT 3600
#define MAX_MODELS 32
#define MAX_ALLOW 16
#define API_MAX (4u << 20)
#define STORE_DEPTH 8
#define START_WAIT 60   /* seconds for ollama.service to answer */
#define GENERATE_TIMEOUT 600

/* ---- config ---- */

static const struct fb_format fmt_port = {
	.name = "ollama_port",
	.message = "the port is a whole number from 1024 to 65535",
	.integer = true,
	.lo = 1024,
	.hi = 65535,
};

static const struct fb_format fmt_pull_timeout = {
	.name = "ollama_pull_timeout",
	.message = "must be a whole number of seconds from 60 to 86400",
	.integer = true,
	.lo = 60,
	.hi = 86400,
};

/* [HOST/][NAMESPACE/]MODEL[:TAG]: every part starts with a letter or digit (no '.' or '..'
 * component: it becomes a path in the store); ollama_name() takes the same. */
#define PART "[A-Za-z0-9][A-Za-z0-9._-]{0,79}"
static const struct fb_format fmt_model = {
	.name = "ollama_model",
	.message = "'%s' is not a model name ([host/][namespace/]model[:tag]: letters, digits, '.', '_', '-')",
	.pattern = "^(" PART "/){0,2}" PART "(:[A-Za-z0-9_][A-Za-z0-9._-]{0,79})?$",
};

static const struct fb_format fmt_digest = {
	.name = "ollama_digest",
	.message = "'%s' is not a model digest (the SHA-256 of its manifest, 64 lower-case hex digits, as /api/tags "
		   "and `ollama list` show it)",
	.pattern = "^[0-9a-f]{64}$",
};

static int valid_models(struct fb_check *c, json_object *v)
{
	return fb_valid_unique(c, v, "name", "model");
}

static const struct fb_field model_fields[] = {
	{ "name", FB_T_STRING, NULL, NULL, &fmt_model, FB_REQUIRED | FB_ID, 0 },
	{ "digest", FB_T_STRING, NULL, NULL, &fmt_digest, FB_REQUIRED, 0 },
	FB_FIELDS_END,
};
static const struct fb_field model_elem = { NULL, FB_T_OBJECT, model_fields, NULL, NULL, 0, 0 };
static const struct fb_field allow_elem = { NULL, FB_T_STRING, NULL, NULL, &fb_fmt_ifname, 0, 0 };
static const struct fb_field ollama_fields[] = {
	{ "listen", FB_T_STRING, NULL, NULL, &fb_fmt_ipv4, 0, 0 },
	{ "port", FB_T_SCALAR, NULL, NULL, &fmt_port, 0, 0 },
	{ "models_dir", FB_T_STRING, NULL, fb_valid_user_dir, &fb_fmt_unit_path, 0, FB_PATH_MAX },
	{ "allow", FB_T_ARRAY, &allow_elem, NULL, NULL, 0, MAX_ALLOW },
	{ "models", FB_T_ARRAY, &model_elem, valid_models, NULL, 0, MAX_MODELS },
	{ "pull", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "pull_timeout", FB_T_SCALAR, NULL, NULL, &fmt_pull_timeout, 0, 0 },
	FB_FIELDS_END,
};
static const struct fb_field ollama_schema = { NULL, FB_T_OBJECT, ollama_fields, NULL, NULL, 0, 0 };

struct model {
	const char *digest; /* the pin */
	char *shown;        /* as /api/tags names it: "llama3.2:3b", "ns/model:tag", "host/ns/model:tag" */
	char *manifest;     /* MODELS/manifests/HOST/NS/MODEL/TAG */
};

struct conf {
	const char *listen, *models_dir;
	int64_t port, pull_timeout;
	bool pull;
	json_object *allow; /* NULL: the defaults */
	struct model *models;
	size_t n_models;
	char *url; /* http://ADDRESS:PORT, where the step talks to it */
};

static void conf_done(struct conf *c)
{
	for (size_t i = 0; i < c->n_models; i++) {
		free(c->models[i].shown);
		free(c->models[i].manifest);
	}
	free(c->models);
	free(c->url);
}

/* NAME (checked by fmt_model) as the store and /api/tags have it. */
static int model_load(const char *dir, const char *name, const char *digest, struct model *m)
{
	_cleanup_free_ char *rel = NULL;
	int r = ollama_name(name, &m->shown, &rel);
	if (r < 0)
		return r;
	m->digest = digest;
	m->manifest = fb_strdupf("%s/%s", dir, rel);
	return m->manifest ? 0 : -ENOMEM;
}

static int conf_load(json_object *section, struct conf *c)
{
	*c = (struct conf){
		.listen = fb_json_str(section, "listen", DEFAULT_LISTEN),
		.models_dir = fb_json_str(section, "models_dir", DEFAULT_MODELS),
		.port = fb_json_int(section, "port", DEFAULT_PORT),
		.pull_timeout = fb_json_int(section, "pull_timeout", DEFAULT_PULL_TIMEOUT),
		.pull = true,
	};
	json_object *v;
	if (json_object_object_get_ex(section, "pull", &v))
		c->pull = json_object_get_boolean(v);
	json_object_object_get_ex(section, "allow", &c->allow);
	/* 0.0.0.0 listens everywhere: the step itself talks to loopback. */
	c->url = fb_strdupf("http://%s:%lld", STREQ(c->listen, "0.0.0.0") ? "127.0.0.1" : c->listen, (long long)c->port);
	if (!c->url)
		return -ENOMEM;
	if (!json_object_object_get_ex(section, "models", &v))
		return 0;
	size_t n = json_object_array_length(v);
	c->models = calloc(n ? n : 1, sizeof(*c->models));
	if (!c->models)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++, c->n_models++) {
		json_object *m = json_object_array_get_idx(v, i);
		int r = model_load(c->models_dir, fb_json_str(m, "name", ""), fb_json_str(m, "digest", ""), &c->models[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the files ---- */

static const struct fb_guard guard = {
	.step = "ollama",
	.table = TABLE,
	.nft = NFT,
	.unit = FW_UNIT,
	.service = SERVICE,
	.what = "Ollama's API",
	.where = "loopback, the tailnet and the mesh",
};

static const char *const allow_default[] = { "tailscale0", "bat0", NULL };

static char *allow_text(const struct conf *c)
{
	return fb_guard_ifaces(c->allow, allow_default);
}

static const char sysusers[] = "# Written by pmoves-firstboot (ollama step).\n"
			       "u " USER " - \"Ollama\" " HOME_DIR "\n"
			       "m " USER " video\n"
			       "m " USER " render\n";

/* As Ollama's install.sh writes it, with the address, the store and the firewall. */
static char *unit_text(const struct conf *c)
{
	return fb_strdupf("# Written by pmoves-firstboot (ollama step).\n"
			  "[Unit]\n"
			  "Description=Ollama Service\n"
			  "After=network-online.target " FW_SERVICE "\n"
			  "Wants=network-online.target\n"
			  "Requires=" FW_SERVICE "\n\n"
			  "[Service]\n"
			  "ExecStart=" OLLAMA " serve\n"
			  "User=" USER "\n"
			  "Group=" USER "\n"
			  "Restart=always\n"
			  "RestartSec=3\n"
			  "Environment=\"HOME=" HOME_DIR "\"\n"
			  "Environment=\"OLLAMA_HOST=%s:%lld\"\n"
			  "Environment=\"OLLAMA_MODELS=%s\"\n\n"
			  "[Install]\n"
			  "WantedBy=multi-user.target\n",
			  c->listen, (long long)c->port, c->models_dir);
}

struct files {
	struct fb_guard_files guard;
	char *unit;
};

static void files_done(struct files *f)
{
	fb_guard_files_done(&f->guard);
	free(f->unit);
}

static int files_make(const struct conf *c, struct files *f)
{
	f->unit = unit_text(c);
	return f->unit ? fb_guard_files_make(&guard, c->allow, allow_default, c->port, &f->guard) : -ENOMEM;
}

static int files_in_place(const struct files *f)
{
	int r;
	if ((r = fb_guard_files_in_place(&guard, &f->guard)) <= 0 || (r = fb_file_is(UNIT, f->unit, strlen(f->unit))) <= 0)
		return r;
	return fb_file_is(SYSUSERS, sysusers, strlen(sysusers));
}

/* ---- the firewall ---- */

/* ---- the store ---- */

/* The manifest of M in the store: 1 read (its blobs in *RET), 0 none there, -EBADMSG not the
 * pinned one or not a manifest (*ret_msg), -errno. */
static int manifest_read(const struct model *m, struct ollama_manifest *ret, char **ret_msg)
{
	_cleanup_free_ char *text = NULL, *error = NULL;
	size_t len;
	int r = fb_read_file(m->manifest, OLLAMA_MANIFEST_MAX, &text, &len, &error);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		*ret_msg = TAKE_PTR(error);
		return r;
	}
	char hex[65];
	if ((r = sha256_hex_of(text, len, hex)) < 0)
		return r;
	if (!STREQ(hex, m->digest)) {
		*ret_msg = fb_strdupf("model '%s': its manifest is sha256:%s, not the pinned sha256:%s", m->shown, hex, m->digest);
		return -EBADMSG;
	}
	if ((r = ollama_manifest_parse(text, ret)) < 0) {
		*ret_msg = fb_strdupf("model '%s': '%s' is not a manifest (config and layers, each with a sha256 digest "
				      "and a size, %d at most)", m->shown, m->manifest, OLLAMA_BLOBS_MAX);
		return -EBADMSG;
	}
	return 1;
}

static char *blob_path(const struct conf *c, const char *hex)
{
	return fb_strdupf("%s/blobs/sha256-%s", c->models_dir, hex);
}

/* Blob I of MF in the store: its size and its SHA-256. 1 right, 0 not (*ret_msg), -errno. */
static int blob_ok(const struct conf *c, const struct model *m, const struct ollama_manifest *mf, size_t i, char **ret_msg)
{
	_cleanup_free_ char *path = blob_path(c, mf->hex[i]);
	if (!path)
		return -ENOMEM;
	_cleanup_close_ int fd = fb_open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
	struct stat st;
	if (fd < 0 && fd != -ENOENT && fd != -ELOOP)
		return fd;
	if (fd >= 0 && fstat(fd, &st) < 0)
		return -errno;
	if (fd < 0 || !S_ISREG(st.st_mode)) {
		*ret_msg = fb_strdupf("model '%s': blob sha256:%s is missing from the store", m->shown, mf->hex[i]);
		return 0;
	}
	if ((uint64_t)st.st_size != mf->size[i]) {
		*ret_msg = fb_strdupf("model '%s': blob sha256:%s has %lld bytes, its manifest says %" PRIu64, m->shown,
				      mf->hex[i], (long long)st.st_size, mf->size[i]);
		return 0;
	}
	char hex[65];
	int r = sha256_fd(fd, hex);
	if (r < 0)
		return r;
	if (!STREQ(hex, mf->hex[i])) {
		*ret_msg = fb_strdupf("model '%s': blob sha256:%s holds sha256:%s", m->shown, mf->hex[i], hex);
		return 0;
	}
	return 1;
}

/* Does a manifest under DFD (a directory of the store's manifests/, DEPTH levels above the
 * manifest files), other than SKIP, list blob HEX? The walk opens each name with O_NOFOLLOW
 * under the directory it is in: nothing outside the store is read. */
static bool blob_listed(int dfd, unsigned depth, const char *skip, const char *hex, const char *dir)
{
	int fd = dup(dfd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return true; /* cannot tell: keep the blob */
	}
	bool found = false;
	for (struct dirent *e; !found && (e = readdir(d));) {
		if (STREQ(e->d_name, ".") || STREQ(e->d_name, ".."))
			continue;
		_cleanup_free_ char *path = fb_strdupf("%s/%s", dir, e->d_name);
		if (!path)
			return closedir(d), true;
		if (depth > 0) {
			_cleanup_close_ int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			found = sub >= 0 && blob_listed(sub, depth - 1, skip, hex, path);
			continue;
		}
		if (STREQ(path, skip))
			continue;
		_cleanup_close_ int mfd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		_cleanup_free_ char *text = NULL;
		size_t len;
		if (mfd < 0 || fb_fd_regular(mfd, path, NULL) < 0 || fb_read_fd(mfd, path, OLLAMA_MANIFEST_MAX, &text, &len, NULL) < 0)
			continue;
		struct ollama_manifest mf;
		if (ollama_manifest_parse(text, &mf) < 0)
			continue;
		for (size_t i = 0; i < mf.n && !found; i++)
			found = STREQ(mf.hex[i], hex);
	}
	closedir(d);
	return found;
}

/* Does a model in the store other than model I (any model, configured or not) list blob HEX? */
static bool blob_shared(const struct conf *c, size_t i, const char *hex)
{
	_cleanup_free_ char *top = fb_strdupf("%s/manifests", c->models_dir);
	_cleanup_close_ int fd = top ? fb_open_dir(top, false) : -ENOMEM;
	if (fd == -ENOENT)
		return false;
	return fd < 0 || blob_listed(fd, 3, c->models[i].manifest, hex, top);
}

/* Model I refused: its manifest, its blob BAD (the wrong one: SIZE_MAX for none) and every
 * other blob of it that no other model in the store lists leave the store. MF: its blobs
 * (NULL: the manifest was not one, only it goes). */
static int model_remove(const struct conf *c, size_t i, const struct ollama_manifest *mf, size_t bad)
{
	int r = 0;
	for (size_t j = 0; mf && j < mf->n; j++) {
		if (j != bad && blob_shared(c, i, mf->hex[j]))
			continue;
		_cleanup_free_ char *path = blob_path(c, mf->hex[j]);
		int k = path ? fb_remove(path) : -ENOMEM;
		if (k < 0 && r == 0)
			r = k;
	}
	int k = fb_remove(c->models[i].manifest);
	return r < 0 ? r : k;
}

/* Model I in the store: 1 there and right (every blob hashed), 0 not there, -EBADMSG refused
 * and removed (*ret_msg says why), -errno. */
static int model_check(const struct conf *c, size_t i, char **ret_msg)
{
	const struct model *m = &c->models[i];
	struct ollama_manifest mf;
	int r = manifest_read(m, &mf, ret_msg);
	if (r == -EBADMSG) {
		model_remove(c, i, NULL, SIZE_MAX);
		return r;
	}
	if (r <= 0)
		return r;
	size_t j = 0;
	for (; j < mf.n && r == 1; j++)
		r = blob_ok(c, m, &mf, j, ret_msg);
	if (r == 0) {
		/* Refused: nothing of it stays for Ollama to serve. */
		model_remove(c, i, &mf, j - 1);
		r = -EBADMSG;
	}
	return r;
}

/* ---- Ollama's API ---- */

/* METHOD PATH with BODY (may be NULL) to Ollama: 0 and, unless RET is NULL, the answer (a JSON
 * object: anything else is -EBADMSG); an HTTP error is -ENOENT (404) or -EIO, with Ollama's
 * "error" in *ret_msg; a transport error is http_request()'s. */
static int api(const struct conf *c, const char *method, const char *path, json_object *body, unsigned timeout,
	       json_object **ret, char **ret_msg)
{
	_cleanup_free_ char *url = fb_strdupf("%s%s", c->url, path), *buf = NULL, *error = NULL;
	if (!url)
		return -ENOMEM;
	struct download_opts o = { .connect_timeout = 5, .timeout = timeout, .user_agent = "pmoves-firstboot" };
	long status;
	int r = http_request(method, url, body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN) : NULL,
			     API_MAX, &o, &status, &buf, NULL, &error);
	if (r < 0) {
		*ret_msg = TAKE_PTR(error);
		return r;
	}
	json_object *o2 = *buf ? json_tokener_parse(buf) : NULL;
	if (status != 200) {
		const char *why = fb_json_str(o2, "error", NULL);
		*ret_msg = fb_strdupf("%s %s: HTTP %ld%s%s", method, path, status, why ? ": " : "", why ? why : "");
		json_object_put(o2);
		return status == 404 ? -ENOENT : -EIO;
	}
	if (!ret) {
		json_object_put(o2);
		return 0;
	}
	if (!json_object_is_type(o2, json_type_object)) {
		json_object_put(o2);
		*ret_msg = fb_strdupf("%s %s: the answer is not a JSON object", method, path);
		return -EBADMSG;
	}
	*ret = o2;
	return 0;
}

static json_object *body_model(const char *name)
{
	json_object *o = json_object_new_object();
	if (o && (json_object_object_add(o, "model", json_object_new_string(name)) < 0 ||
		  json_object_object_add(o, "stream", json_object_new_boolean(false)) < 0)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* The digest /api/tags gives model M: 1 (into HEX), 0 not listed, -errno. */
static int tags_digest(json_object *tags, const struct model *m, char hex[65])
{
	json_object *list;
	if (!json_object_object_get_ex(tags, "models", &list) || !json_object_is_type(list, json_type_array))
		return -EBADMSG;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *e = json_object_array_get_idx(list, i);
		if (!STREQ(fb_json_str(e, "name", ""), m->shown) && !STREQ(fb_json_str(e, "model", ""), m->shown))
			continue;
		const char *d = fb_json_str(e, "digest", "");
		if (!strncmp(d, "sha256:", 7))
			d += 7;
		snprintf(hex, 65, "%s", d);
		return 1;
	}
	return 0;
}

/* Every model listed with its pinned digest: 0, or -ENOENT / -EBADMSG with *ret_msg. */
static int tags_match(const struct conf *c, json_object *tags, char **ret_msg)
{
	for (size_t i = 0; i < c->n_models; i++) {
		char hex[65];
		int r = tags_digest(tags, &c->models[i], hex);
		if (r < 0) {
			*ret_msg = strdup("GET /api/tags: the answer has no \"models\" list");
			return r;
		}
		if (r == 0) {
			*ret_msg = fb_strdupf("Ollama does not list model '%s'", c->models[i].shown);
			return -ENOENT;
		}
		if (!STREQ(hex, c->models[i].digest)) {
			*ret_msg = fb_strdupf("Ollama lists model '%s' as %.64s, not the pinned %s", c->models[i].shown, hex,
					      c->models[i].digest);
			return -EBADMSG;
		}
	}
	return 0;
}

/* Wait for the service to answer /api/tags: 0 (the answer in *ret), or -errno with *ret_msg. */
static int api_up(const struct conf *c, unsigned wait, json_object **ret, char **ret_msg)
{
	int r = -ETIMEDOUT;
	for (unsigned t = 0; t <= wait; t++) {
		free(*ret_msg);
		*ret_msg = NULL;
		if ((r = api(c, "GET", "/api/tags", NULL, 10, ret, ret_msg)) == 0 || (r != -ECONNREFUSED && r != -ETIMEDOUT))
			return r;
		if (t < wait)
			sleep(1);
	}
	_cleanup_free_ char *why = TAKE_PTR(*ret_msg);
	*ret_msg = fb_strdupf("Ollama does not answer on %s after %u s (journalctl -u " SERVICE "): %s", c->url, wait,
			      why ? why : strerror(-r));
	return r;
}

/* Ollama's pull errors when the registry cannot be reached: try again on a later run. */
static bool network_error(const char *msg)
{
	static const char *const words[] = { "dial tcp", "no such host", "i/o timeout", "connection refused",
					     "network is unreachable", "TLS handshake timeout", "connection reset", NULL };
	for (size_t i = 0; msg && words[i]; i++)
		if (strstr(msg, words[i]))
			return true;
	return false;
}

/* Pull model I and check what came against its pin: FB_OK, FB_PENDING (the registry cannot
 * be reached), FB_FAILED (*ret_msg; a wrong one is deleted). */
static enum fb_result model_pull(const struct conf *c, size_t i, char **ret_msg)
{
	const struct model *m = &c->models[i];
	_cleanup_(fb_json_putp) json_object *body = body_model(m->shown);
	_cleanup_(fb_json_putp) json_object *res = NULL;
	_cleanup_(fb_json_putp) json_object *tags = NULL;
	_cleanup_free_ char *why = NULL;
	if (!body)
		return FB_FAILED;
	fb_debug("pulling model '%s'", m->shown);
	int r = api(c, "POST", "/api/pull", body, (unsigned)c->pull_timeout, &res, &why);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot pull model '%s': %s", m->shown, why ? why : strerror(-r));
		return network_error(why) || r == -ETIMEDOUT ? FB_PENDING : FB_FAILED;
	}
	if (!STREQ(fb_json_str(res, "status", ""), "success")) {
		*ret_msg = fb_strdupf("cannot pull model '%s': Ollama says '%s'", m->shown, fb_json_str(res, "status", "?"));
		return FB_FAILED;
	}
	char hex[65];
	if ((r = api(c, "GET", "/api/tags", NULL, 30, &tags, &why)) < 0 || (r = tags_digest(tags, m, hex)) <= 0) {
		*ret_msg = fb_strdupf("model '%s' pulled, but %s", m->shown, why ? why : "Ollama does not list it");
		return FB_FAILED;
	}
	if (STREQ(hex, m->digest))
		return FB_OK;
	_cleanup_(fb_json_putp) json_object *del = json_object_new_object();
	_cleanup_free_ char *why2 = NULL;
	if (!del || json_object_object_add(del, "model", json_object_new_string(m->shown)) < 0)
		return FB_FAILED;
	r = api(c, "DELETE", "/api/delete", del, 60, NULL, &why2);
	*ret_msg = fb_strdupf("model '%s' pulled as sha256:%.64s, not the pinned sha256:%s: %s", m->shown, hex, m->digest,
			      r < 0 ? "and it cannot be deleted" : "deleted");
	return FB_FAILED;
}

/* ---- the GPU ---- */

/* "R36.4.0" from /etc/nv_tegra_release's "# R36 (release), REVISION: 4.0, ...". */
static bool l4t_release(const char *line, char *buf, size_t size, unsigned *ret_major)
{
	unsigned major;
	char rev[16];
	if (sscanf(line, "# R%u (release), REVISION: %15[0-9.]", &major, rev) != 2)
		return false;
	snprintf(buf, size, "R%u.%s", major, rev);
	*ret_major = major;
	return true;
}

/* What Ollama will run on: 0 a GPU (*ret_msg says which), 1 the CPU (*ret_msg says why). */
static int gpu_report(char **ret_msg)
{
	char line[256], rel[40];
	unsigned major;
	int r = fb_read_line("/etc/nv_tegra_release", line, sizeof(line));
	if (r >= 0) {
		if (!l4t_release(line, rel, sizeof(rel), &major))
			snprintf(rel, sizeof(rel), "(unknown release)");
		else if (major < 35) {
			*ret_msg = fb_strdupf("L4T %s: Ollama has no GPU build for L4T before 35 (Jetson Nano): it runs on the CPU", rel);
			return 1;
		}
		static const char *const devs[] = { "/dev/nvgpu/igpu0/ctrl", "/dev/nvhost-gpu", "/dev/nvhost-ctrl-gpu", NULL };
		for (size_t i = 0; devs[i]; i++)
			if (fb_exists(devs[i]) == 1) {
				*ret_msg = fb_strdupf("L4T %s, GPU %s", rel, devs[i]);
				return 0;
			}
		*ret_msg = fb_strdupf("L4T %s but no GPU device (/dev/nvgpu/igpu0, /dev/nvhost-gpu): Ollama runs on the CPU", rel);
		return 1;
	}
	char *argv[] = { "nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader", NULL };
	_cleanup_free_ char *out = NULL;
	r = fb_run_target_capture(argv, &out);
	if (r == 0 && out && out[strspn(out, " \n")]) {
		for (char *p = out; *p; p++)
			if (*p == '\n')
				*p = p[1] ? ';' : '\0';
		*ret_msg = fb_strdupf("GPU: %s (nvidia-smi)", out);
		return 0;
	}
	*ret_msg = fb_strdupf("no GPU (no /etc/nv_tegra_release; nvidia-smi: %s): Ollama runs on the CPU",
			      r < 0 ? strerror(-r) : r == 0 ? "no GPU listed" : "failed");
	return 1;
}

/* The home and the store (with manifests/ and blobs/), the user's: Ollama writes there. */
static int store_make(const struct conf *c, char **ret_msg)
{
	unsigned uid, gid;
	int r = fb_user_ids(USER, &uid, &gid, ret_msg);
	if (r < 0)
		return r;
	/* The home, the store itself and what Ollama keeps in it: nothing else that may be there.
	 * Each made and given through no link (the ollama user owns these). */
	_cleanup_close_ int home = fb_user_dir(HOME_DIR, uid, gid, 0755);
	_cleanup_close_ int store = home < 0 ? home : fb_user_dir(c->models_dir, uid, gid, 0755);
	if (store < 0) {
		*ret_msg = fb_strdupf("cannot give '%s' to '" USER "': %s%s", home < 0 ? HOME_DIR : c->models_dir,
				      strerror(-store), store == -ELOOP ? " (a symbolic link on the way)" : "");
		return store;
	}
	static const char *const subdirs[] = { "/manifests", "/blobs", NULL };
	for (size_t i = 0; subdirs[i]; i++) {
		_cleanup_free_ char *d = fb_strdupf("%s%s", c->models_dir, subdirs[i]);
		_cleanup_close_ int fd = d ? fb_user_dir(d, uid, gid, 0755) : -ENOMEM;
		if (fd < 0 || (r = fb_chown_tree(fd, uid, gid, STORE_DEPTH)) < 0) {
			r = fd < 0 ? fd : r;
			*ret_msg = fb_strdupf("cannot give '%s' to '" USER "': %s", d ? d : c->models_dir, strerror(-r));
			return r;
		}
	}
	return 0;
}

/* What Ollama serves, as the step wants it: the table loaded, every model listed with its
 * digest, a short generation from the first; then the GPU. 0, 1 (no GPU: degraded), or -errno;
 * *ret_msg says which. */
static int serve_verify(const struct conf *c, char **ret_msg)
{
	int r;
	if ((r = fb_guard_loaded(&guard, c->port)) <= 0) {
		*ret_msg = fb_strdupf("the nftables table '%s' is not loaded", TABLE);
		return r < 0 ? r : -EIO;
	}
	_cleanup_(fb_json_putp) json_object *tags = NULL, *gen = NULL;
	if ((r = api(c, "GET", "/api/tags", NULL, 30, &tags, ret_msg)) < 0 || (r = tags_match(c, tags, ret_msg)) < 0)
		return r;
	if (c->n_models) {
		_cleanup_(fb_json_putp) json_object *body = body_model(c->models[0].shown);
		json_object *opts = json_object_new_object();
		if (!body || !opts || json_object_object_add(body, "prompt", json_object_new_string("Reply with one word: ready.")) < 0 ||
		    json_object_object_add(opts, "num_predict", json_object_new_int(8)) < 0 ||
		    json_object_object_add(body, "options", opts) < 0) {
			json_object_put(opts);
			return -ENOMEM;
		}
		_cleanup_free_ char *why = NULL;
		if ((r = api(c, "POST", "/api/generate", body, GENERATE_TIMEOUT, &gen, &why)) < 0) {
			*ret_msg = fb_strdupf("model '%s' does not generate: %s", c->models[0].shown, why ? why : strerror(-r));
			return r;
		}
		json_object *done;
		if (!json_object_object_get_ex(gen, "done", &done) || !json_object_get_boolean(done)) {
			*ret_msg = fb_strdupf("model '%s': /api/generate did not say done", c->models[0].shown);
			return -EIO;
		}
	}
	_cleanup_free_ char *gpu = NULL, *allow = allow_text(c);
	int degraded = gpu_report(&gpu);
	*ret_msg = fb_strdupf("%zu model%s on %s:%lld, reachable from %s only; %s", c->n_models, c->n_models == 1 ? "" : "s",
			      c->listen, (long long)c->port, allow ? allow : "?", gpu ? gpu : "?");
	return degraded;
}

/* SERVED's text: where Ollama answers and the models it serves, once the step has seen them
 * served. check wants it: files and a running service alone are not the step done (the boot's
 * run leaves Ollama started but not yet asked). */
static char *served_text(const struct conf *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fprintf(f, "# Written by pmoves-firstboot (ollama step): Ollama seen serving these\n%s %s\n", c->url, c->models_dir);
	for (size_t i = 0; i < c->n_models; i++)
		fprintf(f, "%s %s\n", c->models[i].shown, c->models[i].digest);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- the step ---- */

static int ollama_check(const struct fb_ctx *ctx, json_object *section, char **ret_msg)
{
	(void)ctx, (void)ret_msg;
	_cleanup_(conf_done) struct conf c = { 0 };
	_cleanup_(files_done) struct files f = { 0 };
	int r = conf_load(section, &c);
	if (r < 0 || (r = files_make(&c, &f)) < 0)
		return r;
	_cleanup_free_ char *served = served_text(&c);
	if (!served)
		return -ENOMEM;
	if ((r = files_in_place(&f)) <= 0 || (r = fb_file_is(SERVED, served, strlen(served))) <= 0 ||
	    (r = fb_exists(OLLAMA)) <= 0 || (r = fb_unit_running(FW_SERVICE)) <= 0 || (r = fb_unit_running(SERVICE)) <= 0)
		return r;
	if (!fb_live())
		return 1;
	_cleanup_(fb_json_putp) json_object *tags = NULL;
	_cleanup_free_ char *why = NULL;
	if ((r = fb_guard_loaded(&guard, c.port)) <= 0)
		return r;
	return api(&c, "GET", "/api/tags", NULL, 10, &tags, &why) == 0 && tags_match(&c, tags, &why) == 0;
}

static enum fb_result ollama_apply(const struct fb_ctx *ctx, json_object *section, char **ret_msg)
{
	(void)ctx;
	_cleanup_(conf_done) struct conf c = { 0 };
	_cleanup_(files_done) struct files f = { 0 };
	int r = conf_load(section, &c);
	if (r < 0 || (r = files_make(&c, &f)) < 0)
		return FB_FAILED;
	if ((r = fb_exists(OLLAMA)) != 1) {
		*ret_msg = strdup("Ollama is not installed yet (" OLLAMA ": an artifact of kind tar, target /usr)");
		return r < 0 ? FB_FAILED : FB_PENDING;
	}
	if (fb_guard_files_write(&guard, &f.guard, ret_msg) < 0)
		return FB_FAILED;
	if ((r = fb_write(UNIT, f.unit, strlen(f.unit), 0644, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write '" UNIT "': %s", strerror(-r));
		return FB_FAILED;
	}
	if (fb_sysusers(SYSUSERS, sysusers, ret_msg) < 0)
		return FB_FAILED;
	if (!fb_dry_run() && (r = store_make(&c, ret_msg)) < 0)
		return FB_FAILED;

	/* The baked models, checked before Ollama sees them. */
	for (size_t i = 0; !fb_dry_run() && i < c.n_models; i++) {
		_cleanup_free_ char *why = NULL;
		r = model_check(&c, i, &why);
		if (r < 0) {
			*ret_msg = fb_strdupf("%s%s", why ? why : strerror(-r), r == -EBADMSG ? ": refused, removed from the store" : "");
			return FB_FAILED;
		}
	}

	if (fb_unit_enable(FW_SERVICE, true, ret_msg) < 0 || fb_unit_enable(SERVICE, true, ret_msg) < 0)
		return FB_FAILED;
	if (!fb_live()) {
		*ret_msg = strdup("Ollama is set up; it starts, and its models are checked, on the running system");
		return FB_PENDING;
	}
	if (fb_system_booting()) {
		*ret_msg = strdup("Ollama starts once the boot is done: the next run checks it");
		return FB_PENDING;
	}
	if (fb_guard_load(&guard, c.port, ret_msg) < 0)
		return FB_FAILED;
	if (fb_dry_run())
		return FB_OK;

	_cleanup_(fb_json_putp) json_object *tags = NULL;
	if (api_up(&c, START_WAIT, &tags, ret_msg) < 0)
		return FB_FAILED;
	for (size_t i = 0; i < c.n_models; i++) {
		char hex[65];
		if ((r = tags_digest(tags, &c.models[i], hex)) < 0) {
			*ret_msg = strdup("GET /api/tags: the answer has no \"models\" list");
			return FB_FAILED;
		}
		if (r == 1)
			continue;
		if (!c.pull) {
			*ret_msg = fb_strdupf("model '%s' is not in the store '%s', and \"pull\" is off", c.models[i].shown,
					      c.models_dir);
			return FB_FAILED;
		}
		enum fb_result res = model_pull(&c, i, ret_msg);
		if (res != FB_OK)
			return res;
	}
	int degraded = serve_verify(&c, ret_msg);
	if (degraded < 0)
		return FB_FAILED;
	_cleanup_free_ char *served = served_text(&c);
	if (!served || (r = fb_write(SERVED, served, strlen(served), 0644, 0, 0)) < 0) {
		free(*ret_msg);
		*ret_msg = fb_strdupf("cannot write '%s': %s", SERVED, strerror(served ? -r : ENOMEM));
		return FB_FAILED;
	}
	return degraded ? FB_DEGRADED : FB_OK;
}

const struct fb_step step_ollama = {
	.name = "ollama",
	.config_key = "ollama",
	.schema = &ollama_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = ollama_check,
	.apply = ollama_apply,
};
