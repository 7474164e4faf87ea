/* SHA-256 (FIPS 180-4), CRC-32 (IEEE, as GPT uses it) and name-based UUIDs. */
#ifndef PMOVES_HASH_H
#define PMOVES_HASH_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t fill;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[32]);
void sha256_hex(const uint8_t digest[32], char out[65]);
/* Whole files, fast: lib/hash-file.h (host side). */

uint32_t crc32_ieee(uint32_t crc, const void *data, size_t len);

/* A UUID (RFC 9562 version 8, variant 10) derived from SEED and a purpose string, so that the
 * same profile and seed give the same identifiers on every build. */
void uuid_derive(const char *seed, const char *purpose, uint8_t out[16]);
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lower case, from the big-endian byte order. */
void uuid_format(const uint8_t u[16], char out[37]);
int uuid_parse(const char *s, uint8_t out[16]);
/* 32 bits derived the same way (FAT volume serials, MBR disk IDs). */
uint32_t u32_derive(const char *seed, const char *purpose);

#endif
