/* Ollama's model store: names and manifests (ollama-store.h). */
#include "ollama-store.h"
#include "util.h"

#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#define PART_MAX 80

/* S[0..N) is a part: 1 to PART_MAX of the allowed bytes, the first a letter or a digit (or
 * '_' when FIRST_UNDERSCORE: a tag). */
static bool part_ok(const char *s, size_t n, bool first_underscore)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	if (n == 0 || n > PART_MAX || !(strchr(alnum, s[0]) || (first_underscore && s[0] == '_')))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !(strchr(alnum, s[i]) || strchr("._-", s[i])))
			return false;
	return true;
}

int ollama_name(const char *name, char **ret_shown, char **ret_rel)
{
	const char *parts[3];
	size_t lens[3], n = 0;
	for (const char *p = name;; n++) {
		const char *slash = strchr(p, '/');
		if (n == 3)
			return -EINVAL;
		parts[n] = p;
		lens[n] = slash ? (size_t)(slash - p) : strlen(p);
		if (!slash)
			break;
		p = slash + 1;
	}
	const char *last = parts[n], *colon = memchr(last, ':', lens[n]);
	size_t mlen = colon ? (size_t)(colon - last) : lens[n];
	const char *tag = colon ? colon + 1 : "latest";
	if (!part_ok(last, mlen, false) || !part_ok(tag, strlen(tag), true))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!part_ok(parts[i], lens[i], false))
			return -EINVAL;
	const char *host = n == 2 ? parts[0] : OLLAMA_REGISTRY;
	int hlen = n == 2 ? (int)lens[0] : (int)strlen(OLLAMA_REGISTRY);
	const char *ns = n >= 1 ? parts[n - 1] : "library";
	int nlen = n >= 1 ? (int)lens[n - 1] : 7;
	bool reg = (size_t)hlen == strlen(OLLAMA_REGISTRY) && !strncmp(host, OLLAMA_REGISTRY, (size_t)hlen);
	bool lib = nlen == 7 && !strncmp(ns, "library", 7);
	char *rel = strdupf("manifests/%.*s/%.*s/%.*s/%s", hlen, host, nlen, ns, (int)mlen, last, tag);
	char *shown = reg && lib ? strdupf("%.*s:%s", (int)mlen, last, tag)
		      : reg      ? strdupf("%.*s/%.*s:%s", nlen, ns, (int)mlen, last, tag)
				 : strdupf("%.*s/%.*s/%.*s:%s", hlen, host, nlen, ns, (int)mlen, last, tag);
	if (!rel || !shown) {
		free(rel);
		free(shown);
		return -ENOMEM;
	}
	*ret_shown = shown;
	*ret_rel = rel;
	return 0;
}

static int add(struct ollama_manifest *m, json_object *desc)
{
	json_object *d, *s;
	if (!json_object_is_type(desc, json_type_object) || !json_object_object_get_ex(desc, "digest", &d) ||
	    !json_object_is_type(d, json_type_string) || !json_object_object_get_ex(desc, "size", &s) ||
	    !json_object_is_type(s, json_type_int))
		return -EBADMSG;
	const char *v = json_object_get_string(d);
	int64_t size = json_object_get_int64(s);
	if (strncmp(v, "sha256:", 7) || strlen(v) != 71 || strspn(v + 7, "0123456789abcdef") != 64 || size < 0)
		return -EBADMSG;
	if (m->n == OLLAMA_BLOBS_MAX)
		return -E2BIG;
	memcpy(m->hex[m->n], v + 7, 65);
	m->size[m->n++] = (uint64_t)size;
	return 0;
}

int ollama_manifest_parse(const char *text, struct ollama_manifest *ret)
{
	json_object *o = json_tokener_parse(text), *config, *layers;
	ret->n = 0;
	int r = -EBADMSG;
	if (json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "config", &config) &&
	    json_object_object_get_ex(o, "layers", &layers) && json_object_is_type(layers, json_type_array)) {
		r = add(ret, config);
		for (size_t i = 0; r == 0 && i < json_object_array_length(layers); i++)
			r = add(ret, json_object_array_get_idx(layers, i));
	}
	json_object_put(o);
	return r;
}
