/* Boot loaders and kernel command lines. */
#include "fb-boot.h"
#include "firstboot.h"
#include "util.h"

#define LOADER_INFO "/sys/firmware/efi/efivars/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
#define PROXMOX_UUIDS "/etc/kernel/proxmox-boot-uuids"
#define CMDLINE_MAX (64 * 1024)

struct fb_boot fb_boot_detect(void)
{
	bool kcmd = fb_exists(FB_KERNEL_CMDLINE) == 1, grub = fb_exists(FB_GRUB_DEFAULT) == 1;
	bool sdboot = kcmd && (fb_exists(LOADER_INFO) == 1 || !grub);
	struct fb_boot b = { FB_LOADER_NONE, NULL, FB_CMDLINE_WHOLE_FILE };
	if (sdboot)
		b = (struct fb_boot){ FB_LOADER_SYSTEMD_BOOT, FB_KERNEL_CMDLINE, FB_CMDLINE_WHOLE_FILE };
	else if (grub)
		b = (struct fb_boot){ FB_LOADER_GRUB, FB_GRUB_DEFAULT, FB_CMDLINE_GRUB };
	/* proxmox-boot-tool keeps the ESPs in sync in either mode, and its own file says which
	 * (/etc/kernel/cmdline without GRUB, even when neither is there yet). */
	if (fb_exists(PROXMOX_UUIDS) == 1) {
		b.loader = FB_LOADER_PROXMOX;
		if (!b.cmdline_file)
			b.cmdline_file = FB_KERNEL_CMDLINE;
	}
	return b;
}

const char *fb_loader_name(enum fb_loader l)
{
	switch (l) {
	case FB_LOADER_SYSTEMD_BOOT:
		return "systemd-boot";
	case FB_LOADER_GRUB:
		return "GRUB";
	case FB_LOADER_PROXMOX:
		return "proxmox-boot-tool";
	case FB_LOADER_NONE:
		break;
	}
	return "none";
}

int fb_boot_refresh(const struct fb_boot *b, const char **ret_what)
{
	static char *grub[] = { "update-grub", NULL }, *pbt[] = { "proxmox-boot-tool", "refresh", NULL };
	char **argv = b->loader == FB_LOADER_GRUB ? grub : b->loader == FB_LOADER_PROXMOX ? pbt : NULL;
	*ret_what = b->loader == FB_LOADER_GRUB ? "update-grub" : b->loader == FB_LOADER_PROXMOX ? "proxmox-boot-tool refresh" : NULL;
	return argv ? fb_run_target(argv) : 0;
}

/* ---- the command line as a string ---- */

/* The length of the parameter at P (before END): up to a blank outside double quotes. */
static size_t param_len(const char *p, const char *end)
{
	bool quoted = false;
	const char *q = p;
	for (; q < end && (quoted || (*q != ' ' && *q != '\t' && *q != '\n')); q++)
		if (*q == '"')
			quoted = !quoted;
	return (size_t)(q - p);
}

static size_t name_len(const char *p, size_t n)
{
	const char *eq = memchr(p, '=', n);
	return eq ? (size_t)(eq - p) : n;
}

/* The names of A and B (their lengths) are the same, '-' and '_' alike. */
static bool same_name(const char *a, size_t an, const char *b, size_t bn)
{
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (a[i] != b[i] && !((a[i] == '-' || a[i] == '_') && (b[i] == '-' || b[i] == '_')))
			return false;
	return true;
}

/* The parameter P (N bytes) is what SPEC asks for: its name, or with a '=' exactly. */
static bool param_is(const char *p, size_t n, const char *spec)
{
	size_t sn = strlen(spec), sk = name_len(spec, sn), pk = name_len(p, n);
	if (!same_name(p, pk, spec, sk))
		return false;
	return sk == sn ? true : n == sn && !memcmp(p + pk, spec + sk, sn - sk);
}

char *fb_cmdline_merge(const char *cmdline, size_t len, const char *const *add, const char *const *remove)
{
	size_t n_add = 0;
	while (add && add[n_add])
		n_add++;
	_cleanup_free_ bool *placed = calloc(n_add + 1, sizeof(bool));
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = placed ? open_memstream(&buf, &blen) : NULL;
	if (!f)
		return NULL;
	bool first = true;
	for (const char *p = cmdline, *end = cmdline + len; p < end;) {
		p += strspn(p, " \t\n");
		if (p >= end)
			break;
		size_t n = param_len(p, end), k = name_len(p, n);
		const char *word = p;
		size_t wl = n;
		bool drop = false;
		for (const char *const *r = remove; r && *r && !drop; r++)
			drop = param_is(p, n, *r);
		for (size_t i = 0; i < n_add && !drop; i++)
			if (same_name(p, k, add[i], name_len(add[i], strlen(add[i])))) {
				drop = placed[i];
				word = add[i];
				wl = strlen(add[i]);
				placed[i] = true;
			}
		if (!drop)
			fprintf(f, "%s%.*s", first ? "" : " ", (int)wl, word), first = false;
		p += n;
	}
	for (size_t i = 0; i < n_add; i++)
		if (!placed[i])
			fprintf(f, "%s%s", first ? "" : " ", add[i]), first = false;
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

bool fb_cmdline_has(const char *cmdline, const char *param)
{
	size_t pn = strlen(param), pk = name_len(param, pn);
	for (const char *p = cmdline, *end = cmdline + strlen(cmdline); p < end;) {
		p += strspn(p, " \t\n");
		size_t n = param_len(p, end), k = name_len(p, n);
		if (n && same_name(p, k, param, pk) && n - k == pn - pk && !memcmp(p + k, param + pk, n - k))
			return true;
		p += n;
	}
	return false;
}

/* /etc/default/grub with GRUB_CMDLINE_LINUX_DEFAULT merged (the last assignment, which is the
 * one that counts; appended when there is none). */
static int grub_text(const char *old, const char *const *add, const char *const *remove, char **ret)
{
	static const char key[] = "GRUB_CMDLINE_LINUX_DEFAULT=";
	const char *line = NULL;
	for (const char *p = old; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		const char *s = p + strspn(p, " \t");
		if (!strncmp(s, key, sizeof(key) - 1))
			line = p;
	}
	_cleanup_free_ char *value = NULL;
	char quote = '"';
	size_t before, after;
	if (line) {
		const char *v = line + strspn(line, " \t") + sizeof(key) - 1, *ve;
		if (*v == '"' || *v == '\'') {
			quote = *v++;
			ve = strchr(v, quote);
			if (!ve)
				return -EINVAL; /* unbalanced quotes: not something to edit blindly */
		} else
			ve = v + strcspn(v, " \t\n#");
		value = fb_cmdline_merge(v, (size_t)(ve - v), add, remove);
		before = (size_t)(line - old);
		const char *nl = strchr(ve, '\n');
		after = nl ? (size_t)(nl + 1 - old) : strlen(old);
	} else {
		value = fb_cmdline_merge("", 0, add, remove);
		before = after = strlen(old);
	}
	if (!value)
		return -ENOMEM;
	if (strchr(value, quote))
		return -EINVAL; /* a parameter with the quote in it would end the shell string */
	const char *sep = before > 0 && old[before - 1] != '\n' ? "\n" : "";
	*ret = fb_strdupf("%.*s%s%s%c%s%c\n%s", (int)before, old, sep, key, quote, value, quote, old + after);
	return *ret ? 0 : -ENOMEM;
}

int fb_boot_cmdline_text(const struct fb_boot *b, const char *old, size_t len, const char *const *add,
			 const char *const *remove, char **ret)
{
	if (memchr(old, '\0', len) || strlen(old) != len)
		return -EINVAL;
	if (b->form == FB_CMDLINE_GRUB)
		return grub_text(old, add, remove, ret);
	_cleanup_free_ char *v = fb_cmdline_merge(old, len, add, remove);
	*ret = v ? fb_strdupf("%s\n", v) : NULL;
	return *ret ? 0 : -ENOMEM;
}
