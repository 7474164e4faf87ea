/* SHA-256 through libcrypto, CRC-32 (IEEE, as GPT uses it) and name-based UUIDs. Whole files,
 * holes skipped: hash-file.h. */
#ifndef PMOVES_HASH_H
#define PMOVES_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A SHA-256 computed in pieces. Every call returns 0 or -errno; final frees the context (and
 * sha256_free may be called after anything, twice included). */
struct sha256 {
	struct evp_md_ctx_st *ctx;
};
int sha256_init(struct sha256 *s);
int sha256_update(struct sha256 *s, const void *data, size_t len);
/* A copy to finish while the original goes on (a digest of what came so far). */
int sha256_copy(struct sha256 *dst, const struct sha256 *src);
int sha256_final(struct sha256 *s, uint8_t out[32]);
int sha256_final_hex(struct sha256 *s, char out[65]);
void sha256_free(struct sha256 *s);
void sha256_hex(const uint8_t digest[32], char out[65]);
/* The SHA-256 of one buffer (a string, a config), raw or as 64 lower-case hex digits. */
int sha256_of(const void *data, size_t len, uint8_t out[32]);
int sha256_hex_of(const void *data, size_t len, char out[65]);
/* The SHA-512 of one buffer, as 128 lower-case hex digits (published keys are pinned so). */
int sha512_hex_of(const void *data, size_t len, char out[129]);

uint32_t crc32_ieee(uint32_t crc, const void *data, size_t len);

/* A UUID (RFC 9562 version 8, variant 10) derived from SEED and a purpose string, so that the
 * same profile and seed give the same identifiers on every build. */
int uuid_derive(const char *seed, const char *purpose, uint8_t out[16]);
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lower case, from the big-endian byte order. */
void uuid_format(const uint8_t u[16], char out[37]);
int uuid_parse(const char *s, uint8_t out[16]);
/* 32 bits derived the same way (FAT volume serials, MBR disk IDs). */
int u32_derive(const char *seed, const char *purpose, uint32_t *ret);

#endif
