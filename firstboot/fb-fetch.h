/* HTTP(S) with libcurl: the config URL and the status report. */
#ifndef PMOVES_FB_FETCH_H
#define PMOVES_FB_FETCH_H

#include <stddef.h>

/* GET URL (https://, or http:// which the caller pins by checksum) into a NUL-terminated
 * buffer of at most MAX bytes, trying a few times with backoff. On failure *ret_error (may be
 * NULL) says why. SSL_CERT_FILE, when set, is the CA bundle. */
int fb_fetch(const char *url, size_t max, char **ret_buf, size_t *ret_len, char **ret_error);
/* POST BODY as application/json to an https:// URL: ATTEMPTS tries, 1 s, 2 s, 4 s... apart. */
int fb_post_json(const char *url, const char *body, unsigned attempts, char **ret_error);

#endif
