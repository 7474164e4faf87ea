/* Downloads pinned by SHA-256, for the build: the rootfs tarball and baked artifacts. */
#ifndef PMOVES_DOWNLOAD_H
#define PMOVES_DOWNLOAD_H

/* URL into DEST when its SHA-256 is WANT (64 hex digits): libcurl over https (http:// only when
 * the URL says so; callers allow it for loopback only), redirects of the same scheme, retries
 * with backoff on transient errors (connection, timeout, truncated body, 5xx, 408, 429), a temp
 * file beside DEST renamed when verified, SSL_CERT_FILE honoured, loopback never proxied. WHAT
 * names the download in messages ("rootfs", "artifact 'tool'"). Returns 0, -EINTR (the build
 * was interrupted), -EBADMSG (hash mismatch: both hashes logged), -EIO (download failed) or
 * another -errno; nothing is left at DEST or beside it on failure. *RET_BYTES: the size. */
#include <stdint.h>

int download_verified(const char *what, const char *url, const char *want, const char *dest, uint64_t *ret_bytes);

#endif
