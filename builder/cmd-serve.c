/* pmoves-image serve DIR: the files of a directory over HTTP (or HTTPS), for netboot. The
 * server itself is http-serve.c; this is the command line, the socket and the signals. */
#include "cmd.h"
#include "flash-config.h"
#include "hash.h"
#include "http-serve.h"
#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define DEFAULT_LISTEN "0.0.0.0:8080"

static void serve_usage(FILE *f)
{
	fprintf(f,
		"usage: pmoves-image serve DIR [--listen ADDR:PORT] [--tls-cert FILE --tls-key FILE]\n"
		"                          [--inventory FILE] [--mode live|install] [--timeout S] [--quiet]\n"
		"\n"
		"Serve the regular files under DIR over HTTP/1.1 (GET and HEAD, single byte ranges,\n"
		"keep-alive): a PXE bundle for iPXE and curl on the LAN. No directory listings; no\n"
		"path leads outside DIR, not even through a symlink. Once listening, one line on\n"
		"stdout: 'serving DIR on http://ADDR:PORT/' (the real port when PORT is 0); then one\n"
		"line on stderr a request: 'serve: CLIENT \"METHOD PATH\" STATUS BYTES SECONDS'.\n"
		"SIGINT or SIGTERM stops it (exit 0).\n"
		"\n"
		"DIR/boot.ipxe, the iPXE script of a bundle of the output 'pxe', is sent with a line\n"
		"'set pmoves-base http://HOST/' after its first, HOST being the address the machine\n"
		"asked for it at, so that it loads the rest from there. With --inventory (the format\n"
		"of 'pmoves-image flash --inventory', docs/flash.md), a machine whose MAC an entry\n"
		"has gets machine/MAC.ipxe, the script with its config's URL and SHA-256 on the kernel\n"
		"command line, and machine/MAC.json, the config: every entry with a \"mac\" is read and\n"
		"checked by pmoves-firstboot's validator once, before serving starts (restart serve\n"
		"after editing the inventory). An entry's \"netboot\": {\"mode\": \"install\", \"disk\":\n"
		"\"serial:S\"} sets its mode and the disk an install writes. Over plain HTTP anyone on the\n"
		"LAN can read a config: secrets in it must be single-use and short-lived.\n"
		"\n"
		"The mode: live (the root in RAM, nothing written) or install (the image written to the\n"
		"machine's disk, then a reboot into it): the inventory entry's, else --mode, else the\n"
		"bundle's (live).\n"
		"\n"
		"Plain HTTP is for a lab: anyone on the LAN can read (and change) what is sent.\n"
		"\n"
		"options:\n"
		"  --listen ADDR:PORT  the address to listen on (default " DEFAULT_LISTEN "); an IPv6\n"
		"                      address in brackets: [::1]:8080; port 0: the kernel picks one\n"
		"  --tls-cert FILE     HTTPS with this certificate chain (PEM); needs --tls-key\n"
		"  --tls-key FILE      the certificate's private key (PEM)\n"
		"  --inventory FILE    per-machine configs by MAC (above)\n"		"  --mode MODE         live or install, for machines the inventory gives no mode\n"
		"  --timeout S         close a connection silent for S seconds, or whose request\n"
		"                      takes longer (default %d)\n"
		"  -q, --quiet         no line a request\n"
		"  -h, --help          show this help\n"
		"\n"
		"At most %d connections are served at once; more are answered 503.\n"
		"\n"
		"exit status: 0 stopped by a signal; 1 cannot listen (address in use) or the server\n"
		"failed; 2 bad usage, a bad --listen, a certificate or key that is not one; 3 DIR,\n"
		"the certificate or the key does not exist\n",
		HTTP_TIMEOUT_DEFAULT, HTTP_MAX_CONNS);
}

/* boot.ipxe of a PXE bundle (the output "pxe") is served with "set pmoves-base URL" after its
 * first line, URL being the address the machine asked for it at (its Host header): the
 * script then loads the kernel, the initramfs and the root from where it came, whatever
 * address or port the server has for that machine. */
#define BOOT_SCRIPT "/boot.ipxe"
#define BOOT_SCRIPT_MAX (64u * 1024)
#define BOOT_SCRIPT_MAGIC "#!ipxe\n"

struct boot_route {
	int dir_fd;
	bool tls;
	const char *inventory; /* --inventory FILE, or NULL */
	const struct inventory_mac *macs; /* its machines, loaded and checked once */
	size_t n_macs;
	const char *mode; /* --mode: for machines the inventory gives none, or NULL (the bundle's) */
};

#define MACHINE_DIR "/machine/"

/* A Host header that can stand in an iPXE script: a name or address, and a port. */
static bool host_ok(const char *h)
{
	size_t n = strlen(h);
	return n > 0 && n <= 255 && strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") == n;
}

/* "52-54-00-12-34-56" (iPXE's ${netX/mac:hexhyp}) followed by SUFFIX, as "52:54:00:12:34:56". */
static bool machine_mac(const char *name, const char *suffix, char mac[18])
{
	if (strlen(name) != 17 + strlen(suffix) || !STREQ(name + 17, suffix))
		return false;
	for (size_t i = 0; i < 17; i++) {
		if (i % 3 == 2 ? name[i] != '-' : hex_digit(name[i]) < 0)
			return false;
		mac[i] = i % 3 == 2 ? ':' : name[i];
	}
	mac[17] = '\0';
	return true;
}

/* The bundle's boot.ipxe with LINES after its first line; 0 when it has none or is not an iPXE
 * script (the static lookup answers). */
static int script_with(const struct boot_route *br, const char *lines, struct http_reply *ret)
{
	_cleanup_close_ int fd = http_open_beneath(br->dir_fd, BOOT_SCRIPT, false);
	if (fd < 0)
		return 0; /* none: the static lookup answers 404 */
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = read_fd(fd, BOOT_SCRIPT_MAX, &text, &len);
	if (r < 0)
		return r;
	size_t magic = strlen(BOOT_SCRIPT_MAGIC);
	if (len < magic || memcmp(text, BOOT_SCRIPT_MAGIC, magic) != 0)
		return 0; /* not an iPXE script: served as it is */
	_cleanup_free_ char *head = strdupf(BOOT_SCRIPT_MAGIC "%s", lines);
	if (!head)
		return -ENOMEM;
	size_t hlen = strlen(head);
	char *body = malloc(hlen + len - magic + 1);
	if (!body)
		return -ENOMEM;
	memcpy(body, head, hlen);
	memcpy(body + hlen, text + magic, len - magic);
	body[hlen + len - magic] = '\0';
	ret->body = body;
	ret->len = hlen + len - magic;
	ret->content_type = http_content_type(BOOT_SCRIPT);
	return 1;
}

static int boot_script_route(void *ctx, const char *path, const struct http_request *req, struct http_reply *ret)
{
	const struct boot_route *br = ctx;
	if (!req->host || !host_ok(req->host))
		return 0; /* the files as they are */
	_cleanup_free_ char *base = strdupf("%s://%s/", br->tls ? "https" : "http", req->host);
	if (!base)
		return -ENOMEM;
	if (STREQ(path, BOOT_SCRIPT)) {
		_cleanup_free_ char *lines = br->mode ? strdupf("set pmoves-base %s\nisset ${pmoves-mode} || set pmoves-mode %s\n",
								base, br->mode)
						      : strdupf("set pmoves-base %s\n", base);
		return lines ? script_with(br, lines, ret) : -ENOMEM;
	}
	/* machine/MAC.ipxe, machine/MAC.json: the inventory's entry for the machine's MAC */
	char mac[18];
	if (!br->inventory || !str_starts_with(path, MACHINE_DIR))
		return 0;
	const char *name = path + strlen(MACHINE_DIR);
	bool script = machine_mac(name, ".ipxe", mac);
	if (!script && !machine_mac(name, ".json", mac))
		return 0;
	const struct inventory_mac *m = NULL;
	for (size_t i = 0; i < br->n_macs && !m; i++)
		if (!strcasecmp(br->macs[i].mac, mac))
			m = &br->macs[i];
	if (!m)
		return 0; /* not a machine of the inventory: 404, its boot.ipxe goes on without */
	if (!script) {
		if (!(ret->body = malloc(m->len + 1)))
			return -ENOMEM;
		memcpy(ret->body, m->text, m->len + 1);
		ret->len = m->len;
		ret->content_type = "application/json";
		ret->wipe = true; /* it may hold secrets */
		return 1;
	}
	char sha[65];
	int r = sha256_hex_of(m->text, m->len, sha);
	if (r < 0)
		return r;
	_cleanup_free_ char *mode = *m->mode ? strdupf("set pmoves-mode %s\n", m->mode) : strdup("");
	_cleanup_free_ char *disk = m->disk ? strdupf("set pmoves-disk pmoves.disk=%s\n", m->disk) : strdup("");
	_cleanup_free_ char *lines = mode && disk ? strdupf("set pmoves-base %s\nset pmoves-machine %s\n"
							    "set pmoves-config pmoves.config=%smachine/%.17s.json "
							    "pmoves.config_sha256=%s\n%s%s",
							    base, mac, base, name, sha, mode, disk)
						  : NULL;
	return lines ? script_with(br, lines, ret) : -ENOMEM;
}

/* The address machines on the LAN reach this one at, for the dnsmasq lines: the one listened
 * on, or for 0.0.0.0 the first IPv4 address of an interface that is up and not loopback. */
static bool lan_address(const struct sockaddr *bound, char buf[static INET_ADDRSTRLEN])
{
	if (bound->sa_family != AF_INET)
		return false;
	struct in_addr a = ((const struct sockaddr_in *)bound)->sin_addr;
	if (a.s_addr != htonl(INADDR_ANY))
		return (ntohl(a.s_addr) >> 24) != 127 && inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
	struct ifaddrs *ifs = NULL;
	bool found = false;
	if (getifaddrs(&ifs) < 0)
		return false;
	for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && (i->ifa_flags & IFF_UP) &&
		    !(i->ifa_flags & IFF_LOOPBACK))
			found = inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf, INET_ADDRSTRLEN);
	freeifaddrs(ifs);
	return found;
}

/* For a bundle served on the LAN: the lines dnsmasq needs to send machines here (the bundle's
 * dnsmasq.conf has the rest: proxy-DHCP or full DHCP, TFTP for plain PXE ROMs). On stderr:
 * stdout has one line. */
static void print_dnsmasq_lines(int dir_fd, const char *dir, const struct sockaddr *bound, bool tls)
{
	char addr[INET_ADDRSTRLEN];
	struct stat st;
	if (fstatat(dir_fd, "boot.ipxe", &st, 0) < 0 || !S_ISREG(st.st_mode) || !lan_address(bound, addr))
		return;
	unsigned port = ntohs(((const struct sockaddr_in *)bound)->sin_port);
	_cleanup_free_ char *abs = realpath(dir, NULL);
	_cleanup_free_ char *shown = abs ? str_printable(abs, strlen(abs), NULL) : NULL;
	fprintf(stderr,
		"serve: for dnsmasq on this LAN (the whole example: %s/dnsmasq.conf):\n"
		"  enable-tftp\n"
		"  tftp-root=%s\n"
		"  dhcp-match=set:ipxe,175\n"
		"  dhcp-match=set:efi64,option:client-arch,7\n"
		"  dhcp-match=set:efi64,option:client-arch,9\n"
		"  dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe\n"
		"  dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi\n"
		"  dhcp-boot=tag:ipxe,%s://%s:%u/boot.ipxe\n",
		shown ? shown : "?", shown ? shown : "?", tls ? "https" : "http", addr, port);
}

/* A socket listening on LISTEN: its fd, or -errno with the error logged. */
static int listen_on(const char *listen_arg, const struct sockaddr_storage *addr, socklen_t len)
{
	_cleanup_close_ int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_errno(-errno, "cannot listen on '%s'", listen_arg);
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return log_errno(-errno, "cannot listen on '%s'", listen_arg);
	if (bind(fd, (const struct sockaddr *)addr, len) < 0 || listen(fd, SOMAXCONN) < 0)
		return log_errno(-errno, "cannot listen on '%s'", listen_arg);
	return TAKE_FD(fd);
}

/* Listen, say where, serve until a signal: http_serve's result, or -errno (logged). */
static int serve_on(const char *dir, const char *listen_arg, const struct sockaddr_storage *addr, socklen_t len,
		    struct http_server *s)
{
	_cleanup_close_ int listen_fd = listen_on(listen_arg, addr, len);
	if (listen_fd < 0)
		return listen_fd;
	struct sockaddr_storage bound;
	socklen_t bound_len = sizeof(bound);
	if (getsockname(listen_fd, (struct sockaddr *)&bound, &bound_len) < 0)
		return log_errno(-errno, "cannot read the address of '%s'", listen_arg);
	char shown_addr[64];
	http_format_addr((struct sockaddr *)&bound, shown_addr);
	_cleanup_free_ char *shown_dir = str_printable(dir, strlen(dir), NULL);
	printf("serving %s on %s://%s/\n", shown_dir ? shown_dir : "?", s->tls ? "https" : "http", shown_addr);
	if (fflush(stdout) != 0) {
		log_error("cannot write to stdout");
		return -EIO;
	}
	print_dnsmasq_lines(s->dir_fd, dir, (struct sockaddr *)&bound, s->tls != NULL);
	s->listen_fd = listen_fd;
	return http_serve(s);
}

int cmd_serve(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_TLS_CERT, O_TLS_KEY, O_TIMEOUT, O_INVENTORY, O_MODE };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "tls-cert", required_argument, NULL, O_TLS_CERT },
		{ "tls-key", required_argument, NULL, O_TLS_KEY },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "inventory", required_argument, NULL, O_INVENTORY },
		{ "mode", required_argument, NULL, O_MODE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *listen_arg = DEFAULT_LISTEN, *cert = NULL, *key = NULL, *inventory = NULL, *mode = NULL;
	struct http_server s = { .dir_fd = -1, .listen_fd = -1, .stop_fd = -1 };
	uint64_t v;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
		switch (c) {
		case O_LISTEN:
			listen_arg = optarg;
			break;
		case O_TLS_CERT:
			cert = optarg;
			break;
		case O_TLS_KEY:
			key = optarg;
			break;
		case O_INVENTORY:
			inventory = optarg;
			break;
		case O_MODE:
			if (!STREQ(optarg, "live") && !STREQ(optarg, "install")) {
				log_error("--mode '%s' is not live or install", optarg);
				return EXIT_USAGE;
			}
			mode = optarg;
			break;
		case O_TIMEOUT:
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > 3600) {
				log_error("--timeout '%s' is not a whole number of seconds from 1 to 3600", optarg);
				return EXIT_USAGE;
			}
			s.timeout = (unsigned)v;
			break;
		case 'q':
			s.quiet = true;
			break;
		case 'h':
			serve_usage(stdout);
			return EXIT_OK;
		case ':':
			log_error("option '%s' needs a value, see 'pmoves-image serve --help'", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			log_error("'%s' is not an option of serve, see 'pmoves-image serve --help'", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		log_error("missing DIR, see 'pmoves-image serve --help'");
		return EXIT_USAGE;
	}
	if (argc - optind > 1) {
		log_error("too many arguments: '%s', serve takes one DIR", argv[optind + 1]);
		return EXIT_USAGE;
	}
	const char *dir = argv[optind];
	if (!cert != !key) {
		log_error("--tls-cert and --tls-key go together: give both for HTTPS, neither for HTTP");
		return EXIT_USAGE;
	}
	struct sockaddr_storage addr;
	socklen_t addr_len;
	if (http_parse_listen(listen_arg, &addr, &addr_len) < 0) {
		log_error("--listen '%s' is not ADDR:PORT (an IPv4 address, or an IPv6 address in brackets "
			  "such as [::1], and a port from 0 to 65535)",
			  listen_arg);
		return EXIT_USAGE;
	}

	_cleanup_close_ int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ENOTDIR) {
			log_error(e == ENOENT ? "'%s' does not exist" : "'%s' is not a directory", dir);
			return EXIT_MISSING;
		}
		log_errno(-e, "cannot open '%s'", dir);
		return EXIT_FAIL;
	}
	struct inventory_mac *macs = NULL;
	size_t n_macs = 0;
	if (inventory) {
		int r = inventory_load_macs(inventory, &macs, &n_macs);
		if (r < 0)
			return r == -ENOENT ? EXIT_MISSING : EXIT_USAGE;
		log_info("inventory '%s': %zu machine%s by MAC", inventory, n_macs, n_macs == 1 ? "" : "s");
	}
	void *tls = NULL;
	if (cert) {
		_cleanup_free_ char *why = NULL;
		int r = http_tls_load(cert, key, &tls, &why);
		if (r < 0) {
			log_error("%s", why ? why : "cannot set up TLS: out of memory");
			inventory_macs_free(macs, n_macs);
			return r == -ENOENT ? EXIT_MISSING : r == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
		}
	}

	/* SIGINT and SIGTERM are read from a signalfd by the accept loop: blocked here, before any
	 * thread starts, so that every thread inherits the mask and none is interrupted. A client
	 * that goes away must not kill the server: SIGPIPE ignored (sends use MSG_NOSIGNAL too). */
	sigset_t stop, old;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_pipe;
	sigaction(SIGPIPE, &ign, &old_pipe);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	int r;
	s.dir_fd = dir_fd;
	s.tls = tls;
	struct boot_route br = { .dir_fd = dir_fd, .tls = tls != NULL, .inventory = inventory, .macs = macs,
				 .n_macs = n_macs, .mode = mode };
	s.route = boot_script_route;
	s.route_ctx = &br;
	s.stop_fd = signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s.stop_fd < 0)
		r = log_errno(-errno, "cannot watch for signals");
	else
		r = serve_on(dir, listen_arg, &addr, addr_len, &s);
	if (r == 0 || r == -ETIMEDOUT)
		log_info("serve: stopped");
	if (s.stop_fd >= 0) {
		/* the signal read, so that it is not delivered once unblocked */
		for (struct signalfd_siginfo si; read(s.stop_fd, &si, sizeof(si)) == sizeof(si);)
			;
		close(s.stop_fd);
	}
	if (r != -ETIMEDOUT) { /* else a connection's thread may still use them */
		http_tls_free(tls);
		inventory_macs_free(macs, n_macs);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	return r == 0 || r == -ETIMEDOUT ? EXIT_OK : EXIT_FAIL;
}
