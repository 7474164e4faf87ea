/* A service's port open on loopback and a few interfaces only (the tailnet, the mesh), closed
 * on every other: for daemons with no authentication of their own (Ollama, pinokiod) or that
 * cannot bind one interface (RustDesk). Each has an nftables table of its own,
 * /etc/pmoves/NAME.nft, loaded by pmoves-NAME-firewall.service before the service starts. A
 * drop in any table's input chain is final, whatever other tables accept. */
#ifndef PMOVES_FB_GUARD_H
#define PMOVES_FB_GUARD_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

struct fb_guard {
	const char *step;    /* the step that writes it, named in the files */
	const char *table;   /* "pmoves_ollama" */
	const char *nft;     /* "/etc/pmoves/ollama.nft" */
	const char *unit;    /* "/etc/systemd/system/pmoves-ollama-firewall.service" */
	const char *service; /* "ollama.service": the table is loaded before it starts */
	const char *what;    /* "Ollama's API": in the comments and the unit's description */
	const char *where;   /* "loopback, the tailnet and the mesh" */
	bool udp;            /* the port on UDP too */
};

/* The interface set ("\"lo\", \"tailscale0\"") from ALLOW (an array of names; NULL: the
 * DEFAULTS, NULL-terminated); malloc'd or NULL. */
char *fb_guard_ifaces(json_object *allow, const char *const *defaults);
/* The table's file and the firewall unit, as a step makes, checks and writes them. */
struct fb_guard_files {
	char *nft, *fw_unit;
};
void fb_guard_files_done(struct fb_guard_files *f);
/* For PORT on loopback and ALLOW (NULL: DEFAULTS): 0 or -ENOMEM. */
int fb_guard_files_make(const struct fb_guard *g, json_object *allow, const char *const *defaults, int64_t port,
			struct fb_guard_files *f);
/* 1: both on disk as made, 0: not, -errno. */
int fb_guard_files_in_place(const struct fb_guard *g, const struct fb_guard_files *f);
/* Both written: 0, or -errno with *ret_msg. */
int fb_guard_files_write(const struct fb_guard *g, const struct fb_guard_files *f, char **ret_msg);
/* 1: the table is loaded with the drop for PORT; 0: not; -errno. The running system only. */
int fb_guard_loaded(const struct fb_guard *g, int64_t port);
/* nft -f the table's file, then fb_guard_loaded(): 0, or -errno with *ret_msg. */
int fb_guard_load(const struct fb_guard *g, int64_t port, char **ret_msg);

#endif
