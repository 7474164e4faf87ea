/* A service's port on a few interfaces only (fb-guard.h). */
#include "fb-guard.h"
#include "firstboot.h"
#include "util.h"

#include <fcntl.h>
#include <stdio.h>

char *fb_guard_ifaces(json_object *allow, const char *const *defaults)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputs("\"lo\"", f);
	for (size_t i = 0; !allow && defaults && defaults[i]; i++)
		fprintf(f, ", \"%s\"", defaults[i]);
	for (size_t i = 0; allow && i < json_object_array_length(allow); i++)
		fprintf(f, ", \"%s\"", json_object_get_string(json_object_array_get_idx(allow, i)));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The table's file for PORT, the interfaces IFACES (fb_guard_ifaces()); malloc'd or NULL.
 * Loading it again replaces the table. */
static char *nft_text(const struct fb_guard *g, const char *ifaces, int64_t port)
{
	long long p = (long long)port;
	_cleanup_free_ char *udp = g->udp ? fb_strdupf("\t\tiifname { %s } udp dport %lld accept\n", ifaces, p) : strdup("");
	_cleanup_free_ char *udp_drop = g->udp ? fb_strdupf("\t\tudp dport %lld drop\n", p) : strdup("");
	if (!udp || !udp_drop)
		return NULL;
	/* "add" then "delete" first: loading the file again replaces the table. */
	return fb_strdupf("#!/usr/sbin/nft -f\n"
			  "# Written by pmoves-firstboot (%s step): %s only from %s.\n"
			  "table inet %s\n"
			  "delete table inet %s\n"
			  "table inet %s {\n"
			  "\tchain input {\n"
			  "\t\ttype filter hook input priority filter - 10; policy accept;\n"
			  "\t\tiifname { %s } tcp dport %lld accept\n"
			  "%s"
			  "\t\ttcp dport %lld drop\n"
			  "%s"
			  "\t}\n"
			  "}\n",
			  g->step, g->what, g->where, g->table, g->table, g->table, ifaces, p, udp, p, udp_drop);
}

/* The firewall unit's text; malloc'd or NULL. */
static char *unit_text(const struct fb_guard *g)
{
	return fb_strdupf("# Written by pmoves-firstboot (%s step).\n"
			  "[Unit]\n"
			  "Description=%s on %s only\n"
			  "Before=%s network-pre.target\n"
			  "Wants=network-pre.target\n\n"
			  "[Service]\n"
			  "Type=oneshot\n"
			  "RemainAfterExit=yes\n"
			  "ExecStart=/usr/sbin/nft -f %s\n"
			  "ExecStop=/usr/sbin/nft delete table inet %s\n\n"
			  "[Install]\n"
			  "WantedBy=multi-user.target\n",
			  g->step, g->what, g->where, g->service, g->nft, g->table);
}

void fb_guard_files_done(struct fb_guard_files *f)
{
	free(f->nft);
	free(f->fw_unit);
}

int fb_guard_files_make(const struct fb_guard *g, json_object *allow, const char *const *defaults, int64_t port,
			struct fb_guard_files *f)
{
	_cleanup_free_ char *ifaces = fb_guard_ifaces(allow, defaults);
	f->nft = ifaces ? nft_text(g, ifaces, port) : NULL;
	f->fw_unit = unit_text(g);
	return f->nft && f->fw_unit ? 0 : -ENOMEM;
}

int fb_guard_files_in_place(const struct fb_guard *g, const struct fb_guard_files *f)
{
	int r = fb_file_is(g->nft, f->nft, strlen(f->nft));
	return r <= 0 ? r : fb_file_is(g->unit, f->fw_unit, strlen(f->fw_unit));
}

int fb_guard_files_write(const struct fb_guard *g, const struct fb_guard_files *f, char **ret_msg)
{
	int r;
	if ((r = fb_write(g->nft, f->nft, strlen(f->nft), 0644, 0, 0)) < 0 ||
	    (r = fb_write(g->unit, f->fw_unit, strlen(f->fw_unit), 0644, 0, 0)) < 0)
		*ret_msg = fb_strdupf("cannot write '%s' and '%s': %s", g->nft, g->unit, strerror(-r));
	return r;
}

int fb_guard_loaded(const struct fb_guard *g, int64_t port)
{
	char *argv[] = { "nft", "list", "table", "inet", (char *)g->table, NULL };
	_cleanup_free_ char *out = NULL, *drop = fb_strdupf("tcp dport %lld drop", (long long)port);
	if (!drop)
		return -ENOMEM;
	int r = fb_run_capture(argv, &out);
	if (r < 0)
		return r;
	return r == 0 && out && strstr(out, drop);
}

int fb_guard_load(const struct fb_guard *g, int64_t port, char **ret_msg)
{
	_cleanup_close_ int fd = fb_open(g->nft, O_RDONLY | O_NOFOLLOW, 0);
	if (fd < 0) {
		*ret_msg = fb_strdupf("cannot open '%s': %s", g->nft, strerror(-fd));
		return fd;
	}
	_cleanup_free_ char *path = fb_fd_path(fd, g->nft, true);
	if (!path)
		return -ENOMEM;
	char *argv[] = { "nft", "-f", path, NULL };
	int r = fb_run_msg(argv, ret_msg);
	if (r < 0 || fb_dry_run())
		return r;
	if ((r = fb_guard_loaded(g, port)) <= 0) {
		*ret_msg = fb_strdupf("the nftables table '%s' is not loaded after 'nft -f %s'", g->table, g->nft);
		return r < 0 ? r : -EIO;
	}
	return 0;
}
