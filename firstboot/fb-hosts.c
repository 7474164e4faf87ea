/* /etc/hosts edited as text: lines are kept as they are unless they name the machine. */
#include "fb-hosts.h"
#include "firstboot.h"
#include "util.h"

#define DEFAULT_HOSTS "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"

struct names {
	const char *name;
	char shortname[256];
};

static void names_init(struct names *n, const char *name)
{
	const char *dot = strchr(name, '.');
	n->name = name;
	snprintf(n->shortname, sizeof(n->shortname), "%.*s", dot ? (int)(dot - name) : (int)strlen(name), name);
}

/* The line (N bytes) starts with the address ADDR, then a blank. */
static bool addr_is(const char *line, size_t n, const char *addr)
{
	size_t al = strlen(addr);
	return n > al && !strncmp(line, addr, al) && (line[al] == ' ' || line[al] == '\t');
}

static bool is_loopback(const char *line, size_t n)
{
	return addr_is(line, n, "127.0.0.1") || addr_is(line, n, "::1");
}

static bool word_names(const struct names *nm, const char *w, size_t n)
{
	return (n == strlen(nm->name) && !strncmp(w, nm->name, n)) ||
	       (n == strlen(nm->shortname) && !strncmp(w, nm->shortname, n));
}

/* The line (N bytes) has NAME or SHORT among its names (a comment ends them). */
static bool names_host(const char *line, size_t n, const struct names *nm)
{
	size_t i = strcspn(line, " \t");
	while (i < n) {
		i += strspn(line + i, " \t");
		size_t w = 0;
		while (i + w < n && line[i + w] != ' ' && line[i + w] != '\t')
			w++;
		if (i >= n || line[i] == '#')
			return false;
		if (word_names(nm, line + i, w))
			return true;
		i += w;
	}
	return false;
}

/* The line without the words NAME and SHORT (blanks before the others kept as they are). */
static void print_without(FILE *f, const char *line, size_t n, const struct names *nm)
{
	size_t i = strcspn(line, " \t");
	fprintf(f, "%.*s", (int)(i < n ? i : n), line);
	while (i < n) {
		size_t sp = strspn(line + i, " \t"), w = 0;
		while (i + sp + w < n && line[i + sp + w] != ' ' && line[i + sp + w] != '\t')
			w++;
		if (i + sp < n && line[i + sp] == '#') {
			fprintf(f, "%.*s", (int)(n - i), line + i); /* the comment as it is */
			break;
		}
		if (w && !word_names(nm, line + i + sp, w))
			fprintf(f, "%.*s", (int)(sp + w), line + i);
		i += sp + w;
	}
	fputc('\n', f);
}

static char *hosts_text(const char *old, const char *addr, const char *name, bool only)
{
	struct names nm;
	names_init(&nm, name);
	_cleanup_free_ char *line = STREQ(nm.shortname, name) ? fb_strdupf("%s\t%s\n", addr, name)
							      : fb_strdupf("%s\t%s %s\n", addr, name, nm.shortname);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = line ? open_memstream(&buf, &len) : NULL;
	if (!f)
		return NULL;
	bool placed = false;
	for (const char *p = old ? old : DEFAULT_HOSTS; *p;) {
		size_t n = strcspn(p, "\n");
		bool local11 = addr_is(p, n, "127.0.1.1");
		if (only) {
			if (is_loopback(p, n) && names_host(p, n, &nm))
				print_without(f, p, n, &nm); /* "127.0.0.1 localhost pve": its names go */
			else if (!local11 && (is_loopback(p, n) || !names_host(p, n, &nm)))
				fprintf(f, "%.*s\n", (int)n, p);
		} else if (local11 && !placed) {
			fputs(line, f);
			placed = true;
		} else if (!local11)
			fprintf(f, "%.*s\n", (int)n, p);
		if (!placed && addr_is(p, n, "127.0.0.1")) {
			fputs(line, f);
			placed = true;
		}
		p += n + (p[n] == '\n');
	}
	if (!placed)
		fputs(line, f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

char *fb_hosts_loopback_name(const char *old, const char *name)
{
	return hosts_text(old, "127.0.1.1", name, false);
}

char *fb_hosts_pin_name(const char *old, const char *addr, const char *name)
{
	return hosts_text(old, addr, name, true);
}

bool fb_hosts_name_routable(const char *text, const char *name)
{
	struct names nm;
	names_init(&nm, name);
	bool found = false;
	for (const char *p = text; p && *p;) {
		size_t n = strcspn(p, "\n");
		if (p[0] != '#' && names_host(p, n, &nm)) {
			if (!strncmp(p, "127.", 4) || addr_is(p, n, "::1"))
				return false;
			found = true;
		}
		p += n + (p[n] == '\n');
	}
	return found;
}
