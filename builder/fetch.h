/* Downloads pinned by SHA-256 for the build: the rootfs tarball and baked artifacts, into the
 * cache (lib/download.h does the transfer). */
#ifndef PMOVES_FETCH_H
#define PMOVES_FETCH_H

#include <stdint.h>

/* URL (https://, or http:// to loopback) into DEST when its SHA-256 is WANT: through a temp file
 * beside DEST (made with O_EXCL, never followed through a link) renamed when verified. WHAT
 * names it in messages ("rootfs", "artifact 'tool'"); retries are logged. Returns 0, -EINTR (the
 * build was interrupted), -EBADMSG (not the pinned content: both hashes logged), -EFBIG,
 * -EIO (the download failed) or another -errno; nothing is left at DEST or beside it on
 * failure. *RET_BYTES: the size. */
int fetch_pinned(const char *what, const char *url, const char *want, const char *dest, uint64_t *ret_bytes);

#endif
