/* The default boot entry: which kernel the loader of the tree starts when nobody picks one, and
 * making a given kernel that default (fb-boot.h). Read from each loader's own files, the way
 * the loader reads them:
 *   systemd-boot       the type #1 entries in ESP/loader/entries/ (ESP: /boot/efi, /efi or
 *                      /boot; entries in each are read), sorted as systemd-boot 251 and later
 *                      sort them; the default is the entry the EFI variable LoaderEntryDefault
 *                      names, else the first that loader.conf's "default" glob matches, else the
 *                      first entry. Made the default by a "default" line in loader.conf.
 *   GRUB               /boot/grub/grub.cfg as update-grub writes it: its "set default=" (an
 *                      entry number, title or id, with '>' between submenu levels;
 *                      "${saved_entry}" from /boot/grub/grubenv), else the first entry. Made the
 *                      default by GRUB_DEFAULT in /etc/default/grub and update-grub.
 *   proxmox-boot-tool  in GRUB mode as GRUB. In systemd-boot mode the ESPs it keeps are not
 *                      mounted: the kernel pinned in /etc/kernel/proxmox-boot-pin, else the
 *                      newest kernel in /boot. Not changed here (proxmox-boot-tool kernel pin).
 * One-shot choices (LoaderEntryOneShot, grub-reboot's next_entry, proxmox-boot-tool's
 * next-boot pin), boot counting and type #2 (UKI) entries are not looked at. */
#include "fb-boot.h"
#include "firstboot.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>

#define LOADER_VAR_DIR "/sys/firmware/efi/efivars"
#define LOADER_GUID "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
#define GRUB_CFG "/boot/grub/grub.cfg"
#define GRUB_ENV "/boot/grub/grubenv"
#define PBT_PIN "/etc/kernel/proxmox-boot-pin"
#define MAX_ENTRIES 1024
#define ENTRY_MAX (64u * 1024u)
#define GRUB_CFG_MAX (4u << 20)
#define GRUB_DEPTH 32
#define RELEASE_MAX 127

static const char *const esp_dirs[] = { "/boot/efi", "/efi", "/boot" };

void fb_boot_default_done(struct fb_boot_default *d)
{
	free(d->entry);
	free(d->release);
	free(d->how);
	*d = (struct fb_boot_default){ 0 };
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = s ? strlen(s) : 0, k = strlen(suffix);
	return n >= k && STREQ(s + n - k, suffix);
}

/* ---- versions ---- */

static bool version_char(char c)
{
	return isalnum((unsigned char)c) || (c && strchr("~-^.", c));
}

/* The order of the UAPI version format (systemd's strverscmp_improved): segments of digits
 * compare as numbers and are newer than letters; '~' is older than anything, even the end;
 * otherwise the longer string is newer; a '-', '^' or '.' is older than anything but the end
 * and '~'. Other characters are skipped. */
int fb_vercmp(const char *a, const char *b)
{
	a = a ? a : "";
	b = b ? b : "";
	if (!*a || !*b)
		return strcmp(a, b);
	for (;;) {
		while (*a && !version_char(*a))
			a++;
		while (*b && !version_char(*b))
			b++;
		if (*a == '~' || *b == '~') {
			if (*a != *b)
				return *a == '~' ? -1 : 1;
			a++, b++;
			continue;
		}
		if (!*a || !*b)
			return (*a != '\0') - (*b != '\0');
		bool sep = false;
		for (const char *s = "-^."; *s && !sep; s++)
			if (*a == *s || *b == *s) {
				if (*a != *b)
					return *a == *s ? -1 : 1;
				a++, b++;
				sep = true;
			}
		if (sep)
			continue;
		const char *ea = a, *eb = b;
		if (isdigit((unsigned char)*a) || isdigit((unsigned char)*b)) {
			while (isdigit((unsigned char)*ea))
				ea++;
			while (isdigit((unsigned char)*eb))
				eb++;
			if ((ea > a) != (eb > b))
				return ea > a ? 1 : -1;
			while (*a == '0')
				a++;
			while (*b == '0')
				b++;
			if (ea - a != eb - b)
				return ea - a > eb - b ? 1 : -1;
		} else {
			while (isalpha((unsigned char)*ea))
				ea++;
			while (isalpha((unsigned char)*eb))
				eb++;
		}
		size_t na = (size_t)(ea - a), nb = (size_t)(eb - b);
		int r = memcmp(a, b, na < nb ? na : nb);
		if (r)
			return r < 0 ? -1 : 1;
		if (na != nb)
			return na > nb ? 1 : -1;
		a = ea, b = eb;
	}
}

/* ---- /boot ---- */

static int newest_first(const void *a, const void *b)
{
	return -fb_vercmp(*(char *const *)a, *(char *const *)b);
}

int fb_boot_kernels(char ***ret)
{
	_cleanup_strv_ char **list = NULL;
	int fd = fb_open("/boot", O_RDONLY | O_DIRECTORY, 0);
	if (fd == -ENOENT) {
		*ret = NULL;
		return 0;
	}
	if (fd < 0)
		return fd;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int r = 0;
	size_t n = 0;
	for (struct dirent *de; r == 0 && (de = readdir(d));) {
		struct stat st;
		const char *release = de->d_name + 8;
		if (strncmp(de->d_name, "vmlinuz-", 8) || !*release || strlen(release) > RELEASE_MAX ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		r = ++n > MAX_ENTRIES ? -E2BIG : strv_push(&list, release);
	}
	closedir(d);
	if (r < 0)
		return r;
	if (list)
		qsort(list, strv_length(list), sizeof(char *), newest_first);
	*ret = TAKE_PTR(list);
	return 0;
}

/* The kernel release in a kernel's path: "/boot/vmlinuz-RELEASE", or with DIR_TOO
 * kernel-install's "/TOKEN/RELEASE/linux". NULL when neither. */
static char *release_of_path(const char *path, bool dir_too)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (!strncmp(base, "vmlinuz-", 8) && base[8])
		return strndup(base + 8, RELEASE_MAX);
	if (!dir_too || base < path + 2)
		return NULL;
	const char *end = base - 1, *start = end;
	while (start > path && start[-1] != '/')
		start--;
	return end > start ? strndup(start, (size_t)(end - start) < RELEASE_MAX ? (size_t)(end - start) : RELEASE_MAX) : NULL;
}

/* ---- systemd-boot ---- */

struct sd_entry {
	char *id; /* the file name in lower case, as systemd-boot names entries */
	char *sort_key, *machine_id, *version;
	char *release; /* the kernel it boots ("linux" line); NULL: none (efi, uki) */
};

struct sd_menu {
	struct sd_entry *e;
	size_t n;
	char *conf; /* loader.conf: where it is, or where it would be */
};

static void sd_menu_done(struct sd_menu *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct sd_entry *e = &m->e[i];
		free(e->id), free(e->sort_key), free(e->machine_id), free(e->version), free(e->release);
	}
	free(m->e);
	free(m->conf);
}

/* The value of the last "KEY value" line of TEXT, trimmed; NULL when there is none. */
static char *conf_value(const char *text, const char *key)
{
	char *v = NULL;
	size_t kl = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		const char *s = p + strspn(p, " \t");
		size_t n = strcspn(s, "\n");
		if (n <= kl || strncmp(s, key, kl) || (s[kl] != ' ' && s[kl] != '\t'))
			continue;
		const char *val = s + kl + strspn(s + kl, " \t");
		size_t m = (size_t)(s + n - val);
		while (m && strchr(" \t\r", val[m - 1]))
			m--;
		free(v);
		v = strndup(val, m);
	}
	return v;
}

static void lower(char *s)
{
	for (; s && *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static int sd_add(struct sd_menu *m, const char *name, const char *text)
{
	if (m->n >= MAX_ENTRIES)
		return -E2BIG;
	struct sd_entry *grown = realloc(m->e, (m->n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	m->e = grown;
	struct sd_entry *e = &m->e[m->n];
	_cleanup_free_ char *lnx = conf_value(text, "linux");
	*e = (struct sd_entry){ .id = strdup(name),
				.sort_key = conf_value(text, "sort-key"),
				.machine_id = conf_value(text, "machine-id"),
				.version = conf_value(text, "version") };
	if (!e->id)
		return -ENOMEM;
	m->n++;
	lower(e->id);
	/* Boot counting: "NAME+LEFT[-DONE].conf" is the entry "NAME.conf". */
	char *plus = strrchr(e->id, '+');
	if (plus && ends_with(plus, ".conf") && isdigit((unsigned char)plus[1]) &&
	    strspn(plus + 1, "0123456789-") == strlen(plus + 1) - 5)
		memmove(plus, plus + strlen(plus) - 5, 6);
	if (lnx)
		e->release = e->version && *e->version ? strndup(e->version, RELEASE_MAX) : release_of_path(lnx, true);
	return 0;
}

static int sd_load_dir(struct sd_menu *m, const char *esp)
{
	_cleanup_free_ char *dir = fb_strdupf("%s/loader/entries", esp);
	if (!dir)
		return -ENOMEM;
	int fd = fb_open(dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd == -ENOENT || fd == -ENOTDIR)
		return 0;
	if (fd < 0)
		return fd;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int r = 0;
	for (struct dirent *de; r == 0 && (de = readdir(d));) {
		if (de->d_name[0] == '.' || !ends_with(de->d_name, ".conf"))
			continue;
		_cleanup_free_ char *path = fb_strdupf("%s/%s", dir, de->d_name), *text = NULL;
		if (!path)
			r = -ENOMEM;
		else if (fb_read(path, ENTRY_MAX, &text, NULL) == 0) /* the unreadable: skipped, as by the loader */
			r = sd_add(m, de->d_name, text);
	}
	closedir(d);
	return r;
}

static int sd_cmp(const void *pa, const void *pb)
{
	const struct sd_entry *a = pa, *b = pb;
	int r = (!a->sort_key) - (!b->sort_key); /* entries with a sort key first */
	if (r)
		return r;
	if (a->sort_key && b->sort_key) {
		if ((r = strcmp(a->sort_key, b->sort_key)) ||
		    (r = strcmp(a->machine_id ? a->machine_id : "", b->machine_id ? b->machine_id : "")) ||
		    (r = -fb_vercmp(a->version, b->version)))
			return r;
	}
	return -fb_vercmp(a->id, b->id);
}

static int sd_load(struct sd_menu *m)
{
	int r;
	for (size_t i = 0; i < ARRAY_SIZE(esp_dirs); i++)
		if ((r = sd_load_dir(m, esp_dirs[i])) < 0)
			return r;
	if (m->n)
		qsort(m->e, m->n, sizeof(*m->e), sd_cmp);
	/* loader.conf is on the ESP: the first of them that has one, or has entries. */
	for (size_t pass = 0; pass < 2 && !m->conf; pass++)
		for (size_t i = 0; i < ARRAY_SIZE(esp_dirs) && !m->conf; i++) {
			_cleanup_free_ char *p = fb_strdupf("%s/loader/%s", esp_dirs[i], pass ? "entries" : "loader.conf");
			if (!p)
				return -ENOMEM;
			if (fb_exists(p) == 1 && !(m->conf = fb_strdupf("%s/loader/loader.conf", esp_dirs[i])))
				return -ENOMEM;
		}
	return 0;
}

/* The EFI variable NAME of systemd-boot (UTF-16 after 4 attribute bytes) as lower-case ASCII
 * (other characters become '?'); NULL when it is not there or empty. */
static char *loader_var(const char *name)
{
	_cleanup_free_ char *path = fb_strdupf(LOADER_VAR_DIR "/%s-" LOADER_GUID, name), *buf = NULL;
	size_t len = 0;
	if (!path || fb_read(path, 4096, &buf, &len) < 0 || len < 6)
		return NULL;
	char *out = calloc((len - 4) / 2 + 1, 1);
	size_t k = 0;
	for (size_t i = 4; out && i + 1 < len; i += 2) {
		unsigned c = (unsigned char)buf[i] | (unsigned)(unsigned char)buf[i + 1] << 8;
		if (c == 0)
			break;
		out[k++] = c < 0x80 ? (char)tolower((int)c) : '?';
	}
	if (out && !k)
		free(TAKE_PTR(out));
	return out;
}

/* The first entry (in the loader's order) whose id PATTERN matches, or -1. */
static ssize_t sd_find(const struct sd_menu *m, const char *pattern)
{
	for (size_t i = 0; pattern && i < m->n; i++)
		if (fnmatch(pattern, m->e[i].id, 0) == 0)
			return (ssize_t)i;
	return -1;
}

/* "@saved": the entry booted last. */
static char *saved_or(char *pattern)
{
	if (!pattern || !STREQ(pattern, "@saved"))
		return pattern;
	free(pattern);
	return loader_var("LoaderEntryLastBooted");
}

/* The default entry's index (-1: no entries) and why; *RET_BY_VAR: an EFI variable chose it. */
static int sd_default(const struct sd_menu *m, ssize_t *ret_i, char **ret_how, bool *ret_by_var)
{
	_cleanup_free_ char *var = saved_or(loader_var("LoaderEntryDefault")), *text = NULL, *pattern = NULL;
	ssize_t i = sd_find(m, var);
	*ret_by_var = i >= 0;
	if (i >= 0) {
		*ret_i = i;
		*ret_how = fb_strdupf("the EFI variable LoaderEntryDefault ('%s')", var);
		return *ret_how ? 0 : -ENOMEM;
	}
	if (m->conf) {
		int r = fb_read(m->conf, ENTRY_MAX, &text, NULL);
		if (r < 0 && r != -ENOENT)
			return r;
		pattern = saved_or(text ? conf_value(text, "default") : NULL);
		lower(pattern);
	}
	i = sd_find(m, pattern);
	*ret_i = i >= 0 ? i : m->n ? 0 : -1;
	*ret_how = i >= 0 ? fb_strdupf("'default %s' in '%s'", pattern, m->conf)
			  : fb_strdupf("the first of the systemd-boot entries (%s)", pattern ? "loader.conf's 'default' matches none" : "no default set");
	return *ret_how ? 0 : -ENOMEM;
}

static int sd_get(struct fb_boot_default *ret)
{
	_cleanup_(sd_menu_done) struct sd_menu m = { 0 };
	ssize_t i;
	bool by_var;
	int r = sd_load(&m);
	if (r < 0)
		return r;
	if (!m.n) {
		ret->how = strdup("no systemd-boot entries in '/boot/efi/loader/entries', '/efi/loader/entries' or '/boot/loader/entries'");
		return ret->how ? 0 : -ENOMEM;
	}
	if ((r = sd_default(&m, &i, &ret->how, &by_var)) < 0)
		return r;
	ret->entry = strdup(m.e[i].id);
	ret->release = m.e[i].release ? strdup(m.e[i].release) : NULL;
	return ret->entry ? 0 : -ENOMEM;
}

/* OLD (a loader.conf, or NULL) with one "default VALUE" line: the first one replaced, others
 * dropped, or one added at the end. */
static char *conf_with_default(const char *old, const char *value)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	bool done = false;
	for (const char *p = old; p && *p;) {
		size_t n = strcspn(p, "\n");
		const char *s = p + strspn(p, " \t");
		bool is_default = !strncmp(s, "default", 7) && (s[7] == ' ' || s[7] == '\t');
		if (is_default && !done)
			fprintf(f, "default %s\n", value), done = true;
		else if (!is_default)
			fprintf(f, "%.*s\n", (int)n, p);
		p += n + (p[n] == '\n');
	}
	if (!done)
		fprintf(f, "default %s\n", value);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int sd_set(const char *suffix, char **ret_what, char **ret_msg)
{
	_cleanup_(sd_menu_done) struct sd_menu m = { 0 };
	_cleanup_free_ char *how = NULL, *old = NULL, *pattern = NULL, *text = NULL;
	ssize_t cur = -1, target = -1;
	bool by_var = false;
	int r = sd_load(&m);
	if (r == 0 && m.n)
		r = sd_default(&m, &cur, &how, &by_var);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read systemd-boot's entries: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < m.n && target < 0; i++)
		if (ends_with(m.e[i].release, suffix))
			target = (ssize_t)i;
	if (target < 0) {
		*ret_msg = fb_strdupf("no systemd-boot entry boots a '*%s' kernel (the kernel's package installs one with "
				      "kernel-install)",
				      suffix);
		return -ENOENT;
	}
	if (cur >= 0 && ends_with(m.e[cur].release, suffix))
		return 0;
	if (by_var) {
		*ret_msg = fb_strdupf("the default entry is '%s', chosen by %s over loader.conf: remove it with 'bootctl "
				      "set-default \"\"'",
				      m.e[cur].id, how);
		return -EBUSY;
	}
	/* A glob that follows the newest such kernel, when it picks this entry. */
	pattern = fb_strdupf("*%s.conf", suffix);
	if (!pattern)
		return -ENOMEM;
	if (sd_find(&m, pattern) != target) {
		free(pattern);
		if (!(pattern = strdup(m.e[target].id)))
			return -ENOMEM;
	}
	struct stat st = { .st_mode = 0644 };
	_cleanup_close_ int fd = fb_open(m.conf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
	if (fd < 0 && fd != -ENOENT) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", m.conf, strerror(-fd));
		return fd;
	}
	/* A regular file only (fb_read_fd): a FIFO there is refused, not waited on. */
	if (fd >= 0 && ((r = fstat(fd, &st) < 0 ? -errno : 0) < 0 || (r = fb_read_fd(fd, m.conf, ENTRY_MAX, &old, NULL, ret_msg)) < 0)) {
		if (!*ret_msg)
			*ret_msg = fb_strdupf("cannot read '%s': %s", m.conf, strerror(-r));
		return r;
	}
	/* On a FAT ESP the mode cannot change: the file keeps its own. */
	if (!(text = conf_with_default(old, pattern)) ||
	    (r = fb_write(m.conf, text, strlen(text), st.st_mode & 0777, (uid_t)-1, (gid_t)-1)) < 0) {
		r = text ? r : -ENOMEM;
		*ret_msg = fb_strdupf("cannot write '%s': %s", m.conf, strerror(-r));
		return r;
	}
	*ret_what = fb_strdupf("'default %s' in '%s' (the default was '%s', %s)", pattern, m.conf, m.e[cur].id, how);
	return 1;
}

/* ---- GRUB ---- */

struct grub_item {
	char *title, *id;
	char *release; /* a menu entry's kernel ("linux" line); NULL for a submenu */
	bool submenu;
	ssize_t parent; /* the submenu it is in, or -1 */
};

struct grub_menu {
	struct grub_item *it;
	size_t n;
	char *def; /* the last "set default=" at the top level, NULL: none */
};

static void grub_menu_done(struct grub_menu *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->it[i].title), free(m->it[i].id), free(m->it[i].release);
	free(m->it);
	free(m->def);
}

/* The shell word at *P, with the quoting grub-mkconfig writes ('...', "...", backslashes),
 * and *P moved past it; NULL at the end of the line (or on ENOMEM). */
static char *word(const char **p)
{
	const char *s = *p + strspn(*p, " \t");
	if (!*s || *s == '\n')
		return NULL;
	char *out = malloc(strcspn(s, "\n") + 1), q = 0;
	size_t k = 0;
	for (; out && *s && *s != '\n'; s++) {
		if (q == '\'' && *s != '\'')
			out[k++] = *s;
		else if (q && *s == q)
			q = 0;
		else if (!q && (*s == ' ' || *s == '\t'))
			break;
		else if (!q && (*s == '\'' || *s == '"'))
			q = *s;
		else if (*s == '\\' && s[1] && s[1] != '\n')
			out[k++] = *++s;
		else
			out[k++] = *s;
	}
	if (out)
		out[k] = '\0';
	*p = s;
	return out;
}

/* A menuentry or submenu line: its title and id (after $menuentry_id_option or --id). */
static int grub_add(struct grub_menu *m, const char *line, bool submenu, ssize_t parent)
{
	if (m->n >= MAX_ENTRIES)
		return -E2BIG;
	struct grub_item *grown = realloc(m->it, (m->n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	m->it = grown;
	struct grub_item *it = &m->it[m->n++];
	*it = (struct grub_item){ .submenu = submenu, .parent = parent };
	const char *p = line;
	free(word(&p)); /* the keyword */
	it->title = word(&p);
	for (char *w; (w = word(&p));) {
		bool id = STREQ(w, "$menuentry_id_option") || STREQ(w, "--id");
		free(w);
		if (id) {
			it->id = word(&p);
			break;
		}
	}
	return it->title ? 0 : -EINVAL;
}

static int grub_parse(const char *text, struct grub_menu *m)
{
	ssize_t stack[GRUB_DEPTH]; /* per open brace: the item it opened, or -1 (a function) */
	size_t depth = 0;
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *s = l + strspn(l, " \t"), *p = s;
		size_t n = strcspn(s, "\n");
		while (n && strchr(" \t\r", s[n - 1]))
			n--;
		if (n == 1 && s[0] == '}') {
			if (depth == 0)
				return -EINVAL;
			depth--;
			continue;
		}
		bool entry = !strncmp(s, "menuentry", 9) && (s[9] == ' ' || s[9] == '\t'),
		     submenu = !strncmp(s, "submenu", 7) && (s[7] == ' ' || s[7] == '\t');
		ssize_t top = depth ? stack[depth - 1] : -1, opened = -1;
		int r;
		if ((entry || submenu) && (depth == 0 || (top >= 0 && m->it[top].submenu))) {
			if ((r = grub_add(m, s, submenu, top)) < 0)
				return r;
			opened = (ssize_t)m->n - 1;
		} else if (depth == 0 && !strncmp(s, "set", 3) && (s[3] == ' ' || s[3] == '\t')) {
			free(word(&p));
			_cleanup_free_ char *w = word(&p);
			if (w && !strncmp(w, "default=", 8) && !STREQ(w + 8, "${next_entry}")) {
				free(m->def);
				if (!(m->def = strdup(w + 8)))
					return -ENOMEM;
			}
		} else if (top >= 0 && !m->it[top].submenu && !m->it[top].release) {
			_cleanup_free_ char *w = word(&p), *path = w ? word(&p) : NULL;
			if (w && path && (STREQ(w, "linux") || STREQ(w, "linux16") || STREQ(w, "linuxefi")))
				m->it[top].release = release_of_path(path, false);
		}
		if (n && s[n - 1] == '{') {
			if (depth == GRUB_DEPTH)
				return -E2BIG;
			stack[depth++] = opened;
		}
	}
	return 0;
}

static int grub_load(struct grub_menu *m)
{
	_cleanup_free_ char *text = NULL;
	int r = fb_read(GRUB_CFG, GRUB_CFG_MAX, &text, NULL);
	return r < 0 ? r : grub_parse(text, m);
}

/* The item DEF names ('>' between levels; each an entry number, title or id), or -1. */
static ssize_t grub_find(const struct grub_menu *m, const char *def)
{
	ssize_t parent = -1;
	for (const char *p = def; p;) {
		size_t n = strcspn(p, ">"), pos = 0;
		bool number = n > 0 && n < 10 && strspn(p, "0123456789") >= n;
		unsigned long want = number ? strtoul(p, NULL, 10) : 0;
		ssize_t found = -1;
		for (size_t i = 0; i < m->n && found < 0; i++) {
			const struct grub_item *it = &m->it[i];
			if (it->parent != parent)
				continue;
			if (number ? pos == want
				   : (it->title && strlen(it->title) == n && !strncmp(it->title, p, n)) ||
					     (it->id && strlen(it->id) == n && !strncmp(it->id, p, n)))
				found = (ssize_t)i;
			pos++;
		}
		if (found < 0 || !p[n])
			return found;
		if (!m->it[found].submenu)
			return -1;
		parent = found;
		p += n + 1;
	}
	return -1;
}

/* The default item (-1: an empty menu) and why. */
static int grub_default(const struct grub_menu *m, ssize_t *ret_i, char **ret_how)
{
	_cleanup_free_ char *saved = NULL, *env = NULL;
	const char *def = m->def ? m->def : "0", *where = GRUB_CFG, *what = "default";
	if (STREQ(def, "${saved_entry}")) {
		int r = fb_read(GRUB_ENV, 64u * 1024u, &env, NULL);
		if (r < 0 && r != -ENOENT)
			return r;
		for (const char *p = env; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
			if (!strncmp(p, "saved_entry=", 12)) {
				free(saved);
				if (!(saved = strndup(p + 12, strcspn(p + 12, "\n"))))
					return -ENOMEM;
			}
		def = saved && *saved ? saved : "0";
		where = GRUB_ENV;
		what = "saved entry";
	}
	ssize_t i = grub_find(m, def);
	/* GRUB boots the first entry when its default names none. */
	*ret_i = i >= 0 ? i : m->n ? 0 : -1;
	*ret_how = fb_strdupf("GRUB's %s '%s' ('%s')%s", what, def, where, i >= 0 ? "" : ", which names no entry: the first one");
	return *ret_how ? 0 : -ENOMEM;
}

static int grub_get(struct fb_boot_default *ret)
{
	_cleanup_(grub_menu_done) struct grub_menu m = { 0 };
	ssize_t i;
	int r = grub_load(&m);
	if (r == -ENOENT) {
		ret->how = strdup("no GRUB menu ('" GRUB_CFG "': run 'update-grub')");
		return ret->how ? 0 : -ENOMEM;
	}
	if (r < 0 || (r = grub_default(&m, &i, &ret->how)) < 0)
		return r;
	if (i < 0)
		return 0;
	ret->entry = strdup(m.it[i].title);
	ret->release = m.it[i].release ? strdup(m.it[i].release) : NULL;
	return ret->entry ? 0 : -ENOMEM;
}

/* /etc/default/grub with GRUB_DEFAULT=VALUE: the last assignment replaced, or one added. */
static char *grub_default_text(const char *old, const char *value)
{
	static const char key[] = "GRUB_DEFAULT=";
	const char *line = NULL;
	for (const char *p = old; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p + strspn(p, " \t"), key, sizeof(key) - 1))
			line = p;
	size_t before = line ? (size_t)(line - old) : old ? strlen(old) : 0;
	size_t after = line ? before + strcspn(line, "\n") + (line[strcspn(line, "\n")] == '\n') : before;
	bool number = strspn(value, "0123456789") == strlen(value);
	const char *sep = before > 0 && old[before - 1] != '\n' ? "\n" : "";
	return fb_strdupf("%.*s%s%s%s%s%s\n%s", (int)before, old ? old : "", sep, key, number ? "" : "\"", value,
			  number ? "" : "\"", old ? old + after : "");
}

static int grub_set(const struct fb_boot *b, const char *suffix, char **ret_what, char **ret_msg)
{
	_cleanup_(grub_menu_done) struct grub_menu m = { 0 };
	_cleanup_free_ char *how = NULL, *value = NULL, *old = NULL, *text = NULL, *now = NULL;
	ssize_t cur = -1, target = -1;
	int r = grub_load(&m);
	if (r == 0)
		r = grub_default(&m, &cur, &how);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read GRUB's menu '" GRUB_CFG "': %s", strerror(-r));
		return r;
	}
	if (cur >= 0 && ends_with(m.it[cur].release, suffix))
		return 0;
	/* A top-level entry (the first one boots the newest kernel), else one in a submenu. */
	for (size_t pass = 0; pass < 2 && target < 0; pass++)
		for (size_t i = 0; i < m.n && target < 0; i++)
			if ((m.it[i].parent < 0) == (pass == 0) && ends_with(m.it[i].release, suffix))
				target = (ssize_t)i;
	if (target < 0) {
		*ret_msg = fb_strdupf("no entry of GRUB's menu ('" GRUB_CFG "') boots a '*%s' kernel", suffix);
		return -ENOENT;
	}
	const struct grub_item *t = &m.it[target], *parent = t->parent >= 0 ? &m.it[t->parent] : NULL;
	if (!parent) {
		size_t pos = 0;
		for (ssize_t i = 0; i < target; i++)
			pos += m.it[i].parent < 0;
		value = fb_strdupf("%zu", pos);
	} else if (t->id && parent->id && parent->parent < 0)
		value = fb_strdupf("%s>%s", parent->id, t->id);
	else {
		*ret_msg = fb_strdupf("GRUB's entry '%s' boots the '*%s' kernel but has no id to name it by in GRUB_DEFAULT",
				      t->title, suffix);
		return -EINVAL;
	}
	if (!value)
		return -ENOMEM;
	if (strpbrk(value, "\"$`\\\n")) {
		*ret_msg = fb_strdupf("GRUB's entry id '%s' cannot go into GRUB_DEFAULT (quotes or '$')", value);
		return -EINVAL;
	}
	r = fb_read(FB_GRUB_DEFAULT, 1u << 20, &old, NULL);
	if (r < 0 && r != -ENOENT) {
		*ret_msg = fb_strdupf("cannot read '" FB_GRUB_DEFAULT "': %s", strerror(-r));
		return r;
	}
	if (!(text = grub_default_text(old, value)))
		return -ENOMEM;
	if ((r = fb_write(FB_GRUB_DEFAULT, text, strlen(text), 0644, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write '" FB_GRUB_DEFAULT "': %s", strerror(-r));
		return r;
	}
	const char *refresh = NULL;
	if ((r = fb_boot_refresh(b, &refresh)) != 0) {
		*ret_msg = fb_strdupf("'%s' exited with %d", refresh, r);
		return r < 0 ? r : -EIO;
	}
	*ret_what = fb_strdupf("GRUB_DEFAULT=%s in '" FB_GRUB_DEFAULT "' and %s (the default was '%s', %s)", value, refresh,
			       cur >= 0 ? m.it[cur].title : "none", how);
	if (fb_dry_run())
		return 1;
	/* What counts is the menu the refresh wrote: a file in /etc/default/grub.d may set
	 * GRUB_DEFAULT again. */
	grub_menu_done(&m);
	m = (struct grub_menu){ 0 };
	if ((r = grub_load(&m)) < 0 || (r = grub_default(&m, &cur, &now)) < 0) {
		*ret_msg = fb_strdupf("cannot read GRUB's menu '" GRUB_CFG "' after '%s': %s", refresh, strerror(-r));
		return r;
	}
	if (cur < 0 || !ends_with(m.it[cur].release, suffix)) {
		*ret_msg = fb_strdupf("GRUB_DEFAULT=%s is in '" FB_GRUB_DEFAULT "', but after '%s' the default is still '%s' (%s): is "
				      "GRUB_DEFAULT set again in '/etc/default/grub.d'?",
				      value, refresh, cur >= 0 ? m.it[cur].title : "none", now);
		return -EIO;
	}
	return 1;
}

/* ---- proxmox-boot-tool, systemd-boot mode ---- */

static int pbt_get(struct fb_boot_default *ret)
{
	char pin[RELEASE_MAX + 1];
	int r = fb_read_line(PBT_PIN, pin, sizeof(pin));
	if (r < 0 && r != -ENOENT)
		return r;
	pin[r < 0 ? 0 : strcspn(pin, " \t\r")] = '\0';
	if (pin[0]) {
		ret->release = strdup(pin);
		ret->how = strdup("pinned in '" PBT_PIN "'");
	} else {
		_cleanup_strv_ char **k = NULL;
		if ((r = fb_boot_kernels(&k)) < 0)
			return r;
		ret->release = k ? strdup(k[0]) : NULL;
		ret->how = strdup("the newest kernel in '/boot', which proxmox-boot-tool makes the default");
	}
	if (ret->release && !(ret->entry = strdup(ret->release)))
		return -ENOMEM;
	return ret->how ? 0 : -ENOMEM;
}

/* ---- the loader ---- */

static bool grub_menu(const struct fb_boot *b)
{
	return b->loader == FB_LOADER_GRUB || (b->loader == FB_LOADER_PROXMOX && b->form == FB_CMDLINE_GRUB);
}

int fb_boot_default_get(const struct fb_boot *b, struct fb_boot_default *ret)
{
	struct fb_boot_default d = { 0 };
	int r;
	if (b->loader == FB_LOADER_SYSTEMD_BOOT)
		r = sd_get(&d);
	else if (grub_menu(b))
		r = grub_get(&d);
	else if (b->loader == FB_LOADER_PROXMOX)
		r = pbt_get(&d);
	else
		r = (d.how = strdup("no boot loader configuration found")) ? 0 : -ENOMEM;
	if (r < 0) {
		fb_boot_default_done(&d);
		return r;
	}
	*ret = d;
	return 0;
}

int fb_boot_default_set(const struct fb_boot *b, const char *suffix, char **ret_what, char **ret_msg)
{
	if (b->loader == FB_LOADER_SYSTEMD_BOOT)
		return sd_set(suffix, ret_what, ret_msg);
	if (grub_menu(b))
		return grub_set(b, suffix, ret_what, ret_msg);
	struct fb_boot_default d = { 0 };
	int r = fb_boot_default_get(b, &d);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot tell the default kernel: %s", strerror(-r));
		return r;
	}
	if (b->loader == FB_LOADER_NONE || ends_with(d.release, suffix)) {
		fb_boot_default_done(&d);
		return 0;
	}
	/* proxmox-boot-tool: its own command pins a kernel; not run from here. */
	*ret_msg = fb_strdupf("proxmox-boot-tool boots '%s' (%s): pin the '*%s' kernel with 'proxmox-boot-tool kernel pin'",
			      d.release ? d.release : "no kernel", d.how, suffix);
	fb_boot_default_done(&d);
	return -EBUSY;
}
