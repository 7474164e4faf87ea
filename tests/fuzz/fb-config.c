/* Fuzz harness: pmoves-firstboot's config (firstboot/fb-config.c, fb-report.c): reading,
 * parsing and checking each source against the schema, merging them, the merged check, the
 * scrubber (secrets out of the config, device.json's scrubbed copy, the state hash) and the
 * redaction of messages and status.json.
 *
 * Input: ETC %% DEVICE %% FW_CFG %% MESSAGE [%% SECRETS]. The first three are written where fb_config_load()
 * reads them under a private --root (etc/pmoves/firstboot.json, boot/efi/pmoves/device.json,
 * the fw_cfg file); a part the input does not give is removed (that source is absent). No
 * proc/cmdline is written: no URL is ever fetched. Then, with the secrets the loader found,
 * every part, the merged config and MESSAGE go through fb_redact() and status.json: what a
 * secret-holding config can put on the console. Checked: no secret that the loader collected
 * is left in a redacted text, unless the secret is itself part of the placeholder
 * "(secret)". With SECRETS (one a line), fb_redact() also runs on MESSAGE with exactly those:
 * any secrets, valid config or not (empty ones, one character, substrings of each other or of
 * the placeholder); checked the same way for the secrets of letters and digits (others can
 * appear around the placeholder, "t)" for one). */
#include "fb-config.h"
#include "fb-report.h"
#include "firstboot.h"
#include "fuzz.h"

#include <ctype.h>

#include <json-c/json.h>

static const char *const sources[] = {
	"etc/pmoves/firstboot.json",
	"boot/efi/pmoves/device.json",
	"sys/firmware/qemu_fw_cfg/by_name/opt/ai.pmoves/device.json/raw",
};

static const char *root;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	root = fuzz_tmpdir();
	/* Nothing may be run: no live system, no runner. */
	unsetenv("PMOVES_FIRSTBOOT_LIVE");
	unsetenv("PMOVES_FIRSTBOOT_RUNNER");
	int r = fb_root_set(root);
	if (r < 0)
		fuzz_die("fb_root_set", r);
	return 0;
}

#define SECRETS_MAX 16

/* OUT with what the filter itself wrote masked by 0x01 (never in a secret that matters
 * here): each "(secret)" and each escape "\xHH" (a control byte of the text, not text). A
 * secret "x" is not left in "\x04". */
static char *masked(const char *out)
{
	char *m = strdup(out);
	if (!m)
		abort();
	for (char *p = m; *p;) {
		size_t n = strncmp(p, "(secret)", 8) == 0 ? 8
			   : p[0] == '\\' && p[1] == 'x' && isxdigit((unsigned char)p[2]) && isxdigit((unsigned char)p[3]) ? 4
													   : 0;
		if (n == 0) {
			p++;
			continue;
		}
		memset(p, 1, n);
		p += n;
	}
	return m;
}

/* TEXT redacted: no secret left in it, outside what the filter wrote (with ALNUM_ONLY, only
 * secrets of letters, digits, '-' and '_' are checked). */
static void redact_check(char *const *secrets, const char *text, bool alnum_only)
{
	char *out = fb_redact(text);
	if (!out)
		abort();
	char *m = masked(out);
	for (char *const *s = secrets; s && *s; s++) {
		if (alnum_only && strspn(*s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != strlen(*s))
			continue;
		if (**s && !strchr(*s, 1) && strstr(m, *s)) {
			fprintf(stderr, "fuzz: secret '%s' left in redacted text '%s'\n", *s, out);
			abort();
		}
	}
	free(m);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part parts[5];
	size_t n = fuzz_split(data, size, parts, 5);
	for (size_t i = 0; i < ARRAY_SIZE(sources); i++) {
		if (i < n)
			fuzz_write(root, sources[i], parts[i].data, parts[i].len);
		else
			fuzz_unlink(root, sources[i]);
	}

	struct fb_config c = { 0 };
	int r = fb_config_load(&c);
	if (fuzz_verbose())
		fprintf(stderr, "fuzz fb-config: %s, %zu secrets\n", r == 0 ? "valid" : c.error ? c.error : strerror(-r),
			strv_length(c.secrets));
	if (r == 0 && (!c.merged || c.error))
		abort();
	if (r < 0 && r != -ENOMEM && !c.error)
		abort(); /* an invalid config always says why */

	if (r == 0) {
		char hex[65];
		if (fb_config_hash(c.merged, hex) < 0 || strlen(hex) != 64)
			abort();
		/* What the engine writes back to the boot partition. */
		if (c.device) {
			json_object *copy = NULL;
			if (json_object_deep_copy(c.device, &copy, NULL) < 0)
				abort();
			(void)fb_config_scrub(copy, NULL);
			(void)json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PRETTY);
			json_object_put(copy);
		}
	}

	fb_report_set_secrets(c.secrets);
	for (size_t i = 0; i < n && i < 4; i++) {
		char *text = strndup((const char *)parts[i].data, parts[i].len);
		if (!text)
			abort();
		redact_check(c.secrets, text, false);
		if (i == 3 || i == n - 1) {
			struct fb_step_status st = { .name = "files", .state = FB_STATE_FAILED, .message = text };
			struct fb_status s = { .status = FB_STATE_FAILED, .config_error = c.error, .steps = &st, .n_steps = 1 };
			char *json = fb_status_json(&s);
			if (!json)
				abort();
			free(json);
		}
		free(text);
	}
	if (c.merged)
		redact_check(c.secrets, json_object_to_json_string_ext(c.merged, JSON_C_TO_STRING_PLAIN), false);
	fb_report_set_secrets(NULL);
	fb_config_done(&c);

	if (n == 5) {
		char *list = strndup((const char *)parts[4].data, parts[4].len);
		char *message = strndup((const char *)parts[3].data, parts[3].len);
		char *secrets[SECRETS_MAX + 1] = { NULL };
		size_t k = 0;
		if (!list || !message)
			abort();
		for (char *p = list; k < SECRETS_MAX; p++) {
			secrets[k++] = p;
			if (!(p = strchr(p, '\n')))
				break;
			*p = '\0';
		}
		fb_report_set_secrets(secrets);
		redact_check(secrets, message, true);
		fb_report_set_secrets(NULL);
		free(message);
		free(list);
	}
	return 0;
}
