/* rootfs.apt_sources (apt-sources.h). */
#include "apt-sources.h"
#include "build.h"
#include "log.h"
#include "run.h"
#include "util.h"

#include <limits.h>
#include <strings.h>
#include <sys/stat.h>

#define URL_MAX 1024
#define KEY_MAX (64u << 10)
#define NAME_MAX_LEN 40

static const char *str(json_object *o, const char *key)
{
	json_object *v = json_object_object_get(o, key);
	return v ? json_object_get_string(v) : NULL;
}

static bool hex_of(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
			return false;
	return true;
}

static bool valid_source_name(const char *s)
{
	if (!s || !*s || strlen(s) > NAME_MAX_LEN || !((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return false;
	return true;
}

static bool valid_word(const char *s)
{
	return valid_name(s, 64);
}

int apt_sources_check(const struct profile *p, struct problems *pr)
{
	json_object *a = json_object_object_get(p->rootfs.json, "apt_sources");
	if (!a)
		return 0;
	size_t n = json_object_array_length(a);
	if (n > APT_SOURCES_MAX)
		return problem(pr, ".rootfs.apt_sources", "%zu sources: at most %d", n, APT_SOURCES_MAX);
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(a, i);
		const char *name = str(s, "name"), *url = str(s, "url"), *suite = str(s, "suite"), *key = str(s, "key"),
			   *fpr = str(s, "fingerprint"), *pin = str(s, "release_sha256");
		char at[64];
#define AT(k) (snprintf(at, sizeof(at), ".rootfs.apt_sources[%zu]%s", i, k), at)
		if (!valid_source_name(name))
			return problem(pr, AT(".name"), "%s is not a source name (a-z, 0-9, '-', '.'; at most %d)",
				       Q(name ? name : ""), NAME_MAX_LEN);
		for (size_t j = 0; j < i; j++)
			if (STREQ(name, str(json_object_array_get_idx(a, j), "name")))
				return problem(pr, AT(".name"), "%s is the name of apt_sources[%zu] too", Q(name), j);
		if (!url ||
		    !(str_starts_with(url, "http://") || str_starts_with(url, "https://") || str_starts_with(url, "file:///")) ||
		    strlen(url) <= strlen("file:///") || str_has_space_or_control(url) || strlen(url) > URL_MAX)
			return problem(pr, AT(".url"),
				       "%s is not a repository URL (http://, https://, or file:///PATH for a local mirror; "
				       "no spaces; at most %d bytes)",
				       Q(url ? url : ""), URL_MAX);
		if (!valid_word(suite))
			return problem(pr, AT(".suite"), "%s is not a suite name", Q(suite ? suite : ""));
		int r = check_str_list(pr, AT(".components"), json_object_object_get(s, "components"), 32, "components",
				       valid_word, "a component name");
		if (r < 0)
			return r;
		if (!json_object_array_length(json_object_object_get(s, "components")))
			return problem(pr, AT(".components"), "names no component");
		if (!key || !*key || str_has_control(key) || strlen(key) >= PATH_MAX)
			return problem(pr, AT(".key"), "%s is not a usable path (the repository's signing key, an "
						       "ASCII-armored OpenPGP public key)", Q(key ? key : ""));
		if (!hex_of(fpr, 40))
			return problem(pr, AT(".fingerprint"),
				       "%s is not an OpenPGP v4 fingerprint (40 hex digits, no spaces): the signing key "
				       "is pinned by it",
				       Q(fpr ? fpr : ""));
		bool lower = pin != NULL;
		for (const char *c = pin; c && *c; c++)
			lower = lower && !(*c >= 'A' && *c <= 'F');
		if (!hex_of(pin, 64) || !lower)
			return problem(pr, AT(".release_sha256"),
				       "%s is not a SHA-256 (64 lowercase hex digits): the repository's InRelease is pinned by it",
				       Q(pin ? pin : ""));
#undef AT
	}
	return 0;
}

/* The key's primary fingerprint, as gpg reads the file (one key, no keyring touched). */
static int key_fingerprint(struct build *b, const char *path, const char *gnupghome, char out[41])
{
	_cleanup_free_ char *gpg = NULL, *env_home = NULL, *text = NULL;
	if (find_program("gpg", &gpg) < 0) {
		log_error("'gpg' not found (install package 'gpg'): it checks the keys of rootfs.apt_sources");
		return -ENOENT;
	}
	if (asprintf(&env_home, "GNUPGHOME=%s", gnupghome) < 0)
		return -ENOMEM;
	char *argv[] = { gpg, "--batch", "--no-tty", "--with-colons", "--import-options", "show-only", "--import",
			 (char *)path, NULL };
	char *env[] = { env_home, NULL };
	int r = run_argv(argv, &(struct run_opts){ .capture = &text, .env = env, .out_fd = b->log_fd });
	if (r != 0)
		return -EBADMSG;
	unsigned pubs = 0;
	bool want = false;
	*out = '\0';
	for (char *l = text; l && *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] == '\n')) {
		if (str_starts_with(l, "pub:")) {
			pubs++;
			want = true;
		} else if (want && str_starts_with(l, "fpr:")) {
			/* fpr:::::::::FINGERPRINT: */
			const char *f = l;
			for (int c = 0; c < 9 && f; c++)
				f = strchr(f, ':') ? strchr(f, ':') + 1 : NULL;
			if (f && strcspn(f, ":\n") == 40)
				snprintf(out, 41, "%.40s", f);
			want = false;
		}
	}
	return pubs == 1 && *out ? 0 : -EBADMSG;
}

static int write_source(const char *path, json_object *s, const char *key_text)
{
	const char *url = str(s, "url");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	/* A local mirror is copied into apt's cache (copy://): mmdebstrap installs the packages
	 * from inside the root, which a file:// path outside it is not. */
	fprintf(f, "Types: deb\nURIs: %s%s\nSuites: %s\nComponents:",
		str_starts_with(url, "file://") ? "copy://" : url, str_starts_with(url, "file://") ? url + 7 : "",
		str(s, "suite"));
	json_object *c = json_object_object_get(s, "components");
	for (size_t i = 0; i < json_object_array_length(c); i++)
		fprintf(f, " %s", json_object_get_string(json_object_array_get_idx(c, i)));
	fputs("\nSigned-By:\n", f);
	for (const char *l = key_text; *l;) {
		size_t n = strcspn(l, "\r\n");
		if (n)
			fprintf(f, " %.*s\n", (int)n, l);
		else
			fputs(" .\n", f);
		l += n;
		l += *l == '\r';
		l += *l == '\n';
	}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	int r = write_file_atomic(path, buf, len, 0644);
	free(buf);
	return r;
}

/* An ASCII-armored public key: one block, printable ASCII lines. */
static bool armored(const char *t)
{
	if (!str_starts_with(t + strspn(t, " \t\r\n"), "-----BEGIN PGP PUBLIC KEY BLOCK-----") ||
	    !strstr(t, "-----END PGP PUBLIC KEY BLOCK-----"))
		return false;
	for (; *t; t++)
		if (!((*t >= ' ' && *t <= '~') || *t == '\n' || *t == '\r' || *t == '\t'))
			return false;
	return true;
}

int apt_sources_prepare(struct build *b, const char *dir, char ***ret_files, char **ret_pins)
{
	json_object *a = json_object_object_get(b->p->rootfs.json, "apt_sources");
	*ret_files = NULL;
	*ret_pins = NULL;
	if (!a || !json_object_array_length(a))
		return 0;
	_cleanup_strv_ char **files = NULL;
	_cleanup_free_ char *home = NULL, *pins = NULL;
	if (asprintf(&home, "%s/gnupg", dir) < 0 || asprintf(&pins, "PMOVES_APT_PINS=") < 0)
		return -ENOMEM;
	if (mkdir(home, 0700) < 0 && errno != EEXIST)
		return log_errno(-errno, "cannot create '%s'", home);
	int r = 0;
	for (size_t i = 0; r == 0 && i < json_object_array_length(a); i++) {
		json_object *s = json_object_array_get_idx(a, i);
		const char *name = str(s, "name"), *key = str(s, "key"), *url = str(s, "url");
		_cleanup_free_ char *text = NULL, *path = NULL, *more = NULL, *dists = NULL;
		char fpr[41];
		struct stat st;
		if (str_starts_with(url, "file://")) {
			if (asprintf(&dists, "%s/dists/%s", url + 7, str(s, "suite")) < 0)
				return -ENOMEM;
			if (stat(dists, &st) < 0 || !S_ISDIR(st.st_mode)) {
				log_error("rootfs.apt_sources[%zu] (%s): the local mirror has no '%s'", i, name, dists);
				r = -ENOENT;
				break;
			}
		}
		r = read_file(key, KEY_MAX, &text, NULL);
		if (r < 0) {
			log_error("rootfs.apt_sources[%zu] (%s): cannot read the key '%s': %s", i, name, key,
				  r == -EFBIG ? "larger than 64 KiB" : strerror(-r));
			break;
		}
		if (!armored(text)) {
			log_error("rootfs.apt_sources[%zu] (%s): '%s' is not an ASCII-armored OpenPGP public key "
				  "(gpg --armor --export makes one)",
				  i, name, key);
			r = -EINVAL;
			break;
		}
		r = key_fingerprint(b, key, home, fpr);
		if (r == -ENOENT)
			break;
		if (r < 0 || strcasecmp(fpr, str(s, "fingerprint")) != 0) {
			log_error("rootfs.apt_sources[%zu] (%s): the key '%s' %s%s, but the profile pins %s", i, name, key,
				  r < 0 ? "is not one OpenPGP public key gpg reads" : "has the fingerprint ", r < 0 ? "" : fpr,
				  str(s, "fingerprint"));
			r = -EINVAL;
			break;
		}
		if (asprintf(&path, "%s/%s.sources", dir, name) < 0 ||
		    asprintf(&more, "%s%s%s:%s", pins, i ? " " : "", name, str(s, "release_sha256")) < 0)
			return -ENOMEM;
		free(pins);
		pins = TAKE_PTR(more);
		if ((r = write_source(path, s, text)) < 0)
			log_errno(r, "cannot write '%s'", path);
		else if ((r = strv_push(&files, path)) == 0)
			log_info("rootfs: apt source %s: %s %s, key %s", name, url, str(s, "suite"), fpr);
	}
	rm_rf(home);
	if (r < 0) {
		for (size_t i = 0; files && files[i]; i++)
			unlink(files[i]);
		return r;
	}
	*ret_files = TAKE_PTR(files);
	*ret_pins = TAKE_PTR(pins);
	return 0;
}

void apt_sources_log_cached(const struct profile *p)
{
	json_object *a = json_object_object_get(p->rootfs.json, "apt_sources");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *s = json_object_array_get_idx(a, i);
		log_info("rootfs: apt source %s: %s %s, key %s (in the cached root filesystem)", str(s, "name"), str(s, "url"),
			 str(s, "suite"), str(s, "fingerprint"));
	}
}

const char *const apt_sources_hooks[2] = {
	/* Before anything is installed: every pin is the SHA-256 of an InRelease (or Release) apt
	 * fetched. apt checked its signature with the source's own key. */
	"--extract-hook=for p in $PMOVES_APT_PINS; do n=${p%%:*}; s=${p#*:}; f=; "
	"for l in \"$1\"/var/lib/apt/lists/*_InRelease \"$1\"/var/lib/apt/lists/*_Release; do "
	"[ -f \"$l\" ] && [ \"$(sha256sum <\"$l\" | cut -c1-64)\" = \"$s\" ] && f=1; done; "
	"[ -n \"$f\" ] || { echo \"E: pmoves-image: rootfs.apt_sources $n: no InRelease apt fetched has the pinned "
	"SHA-256 $s (release_sha256); the repository changed, or the pin is wrong. apt fetched:\" >&2; "
	"(cd \"$1/var/lib/apt/lists\" && sha256sum *_InRelease) >&2; exit 1; }; done",
	/* A local mirror's path means nothing on the machine: its source is not kept. */
	"--customize-hook=for f in \"$1\"/etc/apt/sources.list.d/*.sources; do "
	"if [ -f \"$f\" ] && grep -q '^URIs: copy://' \"$f\"; then rm -f \"$f\" || exit 1; fi; done",
};
