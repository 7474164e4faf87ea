/* SHA-256 through libcrypto (the CPU's SHA instructions where it has them), CRC-32, UUIDs. */
#include "hash.h"
#include "util.h"

#include <openssl/evp.h>

int sha256_init(struct sha256 *s)
{
	s->ctx = EVP_MD_CTX_new();
	if (!s->ctx || EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) != 1) {
		sha256_free(s);
		return -ENOMEM;
	}
	return 0;
}

int sha256_update(struct sha256 *s, const void *data, size_t len)
{
	return s->ctx && EVP_DigestUpdate(s->ctx, data, len) == 1 ? 0 : -EIO;
}

int sha256_copy(struct sha256 *dst, const struct sha256 *src)
{
	dst->ctx = EVP_MD_CTX_new();
	if (!dst->ctx || EVP_MD_CTX_copy_ex(dst->ctx, src->ctx) != 1) {
		sha256_free(dst);
		return -ENOMEM;
	}
	return 0;
}

int sha256_final(struct sha256 *s, uint8_t out[32])
{
	unsigned len = 0;
	int r = s->ctx && EVP_DigestFinal_ex(s->ctx, out, &len) == 1 && len == 32 ? 0 : -EIO;
	sha256_free(s);
	return r;
}

int sha256_final_hex(struct sha256 *s, char out[65])
{
	uint8_t d[32];
	int r = sha256_final(s, d);
	if (r == 0)
		sha256_hex(d, out);
	return r;
}

void sha256_free(struct sha256 *s)
{
	EVP_MD_CTX_free(s->ctx);
	s->ctx = NULL;
}

int sha256_of(const void *data, size_t len, uint8_t out[32])
{
	unsigned n = 0;
	return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -EIO;
}

int sha256_hex_of(const void *data, size_t len, char out[65])
{
	uint8_t d[32];
	int r = sha256_of(data, len, d);
	if (r == 0)
		sha256_hex(d, out);
	return r;
}

int sha512_hex_of(const void *data, size_t len, char out[129])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t d[64];
	unsigned n = 0;
	if (EVP_Digest(data, len, d, &n, EVP_sha512(), NULL) != 1 || n != 64)
		return -EIO;
	for (int i = 0; i < 64; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[128] = '\0';
	return 0;
}

void sha256_hex(const uint8_t d[32], char out[65])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
}

uint32_t crc32_ieee(uint32_t crc, const void *data, size_t len)
{
	static uint32_t table[256];
	if (!table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
	const uint8_t *p = data;
	crc = ~crc;
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

int uuid_derive(const char *seed, const char *purpose, uint8_t out[16])
{
	struct sha256 s;
	uint8_t d[32];
	int r = sha256_init(&s);
	if (r == 0 && ((r = sha256_update(&s, "pmoves-uuid\0", 12)) < 0 ||
		       (r = sha256_update(&s, seed, strlen(seed) + 1)) < 0 ||
		       (r = sha256_update(&s, purpose, strlen(purpose))) < 0))
		sha256_free(&s);
	if (r == 0)
		r = sha256_final(&s, d);
	if (r < 0)
		return r;
	memcpy(out, d, 16);
	out[6] = (uint8_t)((out[6] & 0x0f) | 0x80); /* version 8: custom */
	out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* variant 10 */
	return 0;
}

int u32_derive(const char *seed, const char *purpose, uint32_t *ret)
{
	uint8_t u[16];
	int r = uuid_derive(seed, purpose, u);
	if (r < 0)
		return r;
	*ret = (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
	return 0;
}

void uuid_format(const uint8_t u[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	int o = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[u[i] >> 4];
		out[o++] = hex[u[i] & 15];
	}
	out[o] = '\0';
}

int uuid_parse(const char *s, uint8_t out[16])
{
	uint8_t u[16];
	int n = 0;
	if (strlen(s) != 36)
		return -EINVAL;
	for (int i = 0; i < 36;) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i++] != '-')
				return -EINVAL;
			continue;
		}
		int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		u[n++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	memcpy(out, u, 16);
	return 0;
}
