/* Ollama's model store (the directory OLLAMA_MODELS names), as Ollama keeps it:
 *   manifests/HOST/NAMESPACE/MODEL/TAG   a Docker v2 image manifest (JSON): "config" and
 *                                        "layers", each {mediaType, digest "sha256:HEX", size}
 *   blobs/sha256-HEX                     each blob, named by its SHA-256
 * A model's digest, as /api/tags and `ollama list` give it, is the SHA-256 of its manifest
 * file: pinning it pins every blob through the digests the manifest lists. Both programs read
 * stores: pmoves-image bakes models from one into an image, pmoves-firstboot checks them. */
#ifndef PMOVES_OLLAMA_STORE_H
#define PMOVES_OLLAMA_STORE_H

#include <stddef.h>
#include <stdint.h>

#define OLLAMA_REGISTRY "registry.ollama.ai"
#define OLLAMA_MANIFEST_MAX (1u << 20)
#define OLLAMA_BLOBS_MAX 64

/* NAME, "[host/][namespace/]model[:tag]" as `ollama pull` takes it (each part 1 to 80 of
 * A-Z a-z 0-9 . _ -, starting with a letter or a digit; the tag may start with '_'), as
 * /api/tags names it (*ret_shown: "llama3.2:3b", "ns/model:tag", "host/ns/model:tag"; no tag
 * is "latest") and its manifest's path in a store (*ret_rel: "manifests/HOST/NS/MODEL/TAG").
 * -EINVAL for anything else: no part is ".", ".." or empty, so the path stays in the store. */
int ollama_name(const char *name, char **ret_shown, char **ret_rel);

struct ollama_manifest {
	char hex[OLLAMA_BLOBS_MAX][65]; /* the blobs' SHA-256, config first */
	uint64_t size[OLLAMA_BLOBS_MAX];
	size_t n;
};

/* TEXT (a manifest, NUL-terminated) into *RET: 0; -EBADMSG when it is not one (no config or
 * layers, a digest that is not "sha256:" and 64 lower-case hex digits, a size that is not a
 * whole number); -E2BIG past OLLAMA_BLOBS_MAX blobs. */
int ollama_manifest_parse(const char *text, struct ollama_manifest *ret);

#endif
