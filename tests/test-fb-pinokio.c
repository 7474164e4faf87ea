/* The pinokio step on fixture trees: the baked pinokiod checked against its pins, the user's
 * homes, the apps copied (the machine's own first, an app already there left alone, nothing
 * followed out of the user's directories), the unit and the firewall. The baked tree here is a
 * stand-in (two JSON files and an empty script), and the runner is the stand-in of
 * test-fb-lib.h (systemd-sysusers and systemctl only recorded): the real pinokiod answers in
 * tests/e2e/dev-workstation.t. */
#include "run.h"
#include "test-fb-lib.h"

#define OTHERS_OFF "\"steps\": {\"growfs\": {\"enabled\": false}, \"ssh\": {\"enabled\": false}, \"efiboot\": {\"enabled\": false}}"
#define VERSION "5.3.28"
#define INTEGRITY "sha512-o1BmDfl8q3cz29IImKWynD1kLA6ID0SwT3CGgBY1wEnLrw5zOxVgIuJoI5pvwAo81/7jzlpyedWwx8xHKylHYA=="
#define OTHER_INTEGRITY "sha512-NUBU5bugdx7ethRBZ8fffAIsGTX7RYXJOi6iTVbcayX6b9XKGAKG4fdV+YJpuUYYFLoTYt41lq/k7bqOJB5vhA=="
#define PREFIX "usr/lib/pmoves/pinokiod"
#define UID 998

static char *config(const char *more)
{
	return t_strf("{" OTHERS_OFF ", \"pinokio\": {\"version\": \"" VERSION "\", \"integrity\": \"" INTEGRITY "\"%s%s}}",
		      more ? ", " : "", more ? more : "");
}

/* A tree with the user (as systemd-sysusers would make it: the stand-in runner does not), Node,
 * a baked pinokiod at VERSION locked with LOCKED, and the apps comfyui and ollama in the image
 * and "mine" in the machine's own directory. */
static char *pinokio_tree(const char *version, const char *locked, const char *more)
{
	char *root = t_tree();
	t_write(root, "etc/passwd",
		"root:x:0:0:root:/root:/bin/bash\npinokio:x:998:998:Pinokio:/home/pinokio:/bin/bash\n");
	t_write(root, "etc/group", "root:x:0:\npinokio:x:998:\n");
	t_write(root, "usr/bin/node", "stand-in\n");
	if (version) {
		char *pkg = t_strf("{\"name\": \"pinokiod\", \"version\": \"%s\"}", version);
		char *lock = t_strf("{\"lockfileVersion\": 3, \"packages\": {\"\": {}, \"node_modules/pinokiod\": "
				    "{\"version\": \"" VERSION "\", \"integrity\": \"%s\"}}}",
				    locked);
		t_write(root, PREFIX "/node_modules/pinokiod/package.json", pkg);
		t_write(root, PREFIX "/package-lock.json", lock);
		t_write(root, PREFIX "/node_modules/pinokiod/script/index.js", "// stand-in\n");
		free(pkg), free(lock);
	}
	t_write(root, "usr/share/pmoves/pinokio/comfyui/pinokio.js", "module.exports = { title: \"ComfyUI\" }\n");
	t_write(root, "usr/share/pmoves/pinokio/comfyui/install.js", "module.exports = { run: [] }\n");
	t_write(root, "usr/share/pmoves/pinokio/comfyui/sub/deep.json", "{}\n");
	t_write(root, "usr/share/pmoves/pinokio/ollama/pinokio.js", "module.exports = { title: \"Ollama\" }\n");
	t_write(root, "etc/pmoves/pinokio/mine/pinokio.js", "module.exports = { title: \"Mine\" }\n");
	char *cfg = config(more);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	free(cfg);
	return root;
}

static void test_config(void)
{
	static const struct {
		const char *more, *want;
	} bad[] = {
		{ "\"apps\": [\"comfyui\", \"comfyui\"]", "app 'comfyui' is listed twice" },
		{ "\"apps\": [\"../etc\"]", "'../etc' is not an app name" },
		{ "\"allow\": [\"eth0 x\"]", ".pinokio.allow[0]" },
		{ "\"prefix\": \"relative\"", ".pinokio.prefix" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *root = pinokio_tree(VERSION, INTEGRITY, bad[i].more);
		struct t_result r = t_run(root, NULL);
		tap_ok(r.status != 0, "config %s: refused", bad[i].more);
		tap_contains(r.err, bad[i].want, "config %s: the message says what", bad[i].more);
		tap_ok(!t_exists(root, "home/pinokio"), "config %s: nothing applied", bad[i].more);
		t_result_free(&r);
		t_cleanup(root);
	}
	char *root = pinokio_tree(VERSION, INTEGRITY, NULL);
	t_write(root, "etc/pmoves/firstboot.json", "{" OTHERS_OFF ", \"pinokio\": {\"version\": \"5.3.28\", \"integrity\": \"sha1-abc\"}}");
	struct t_result r = t_run(root, NULL);
	tap_contains(r.err, "'sha1-abc' is not an npm integrity hash", "config: an integrity that is not sha512 is refused");
	t_result_free(&r);
	t_cleanup(root);
}

static void test_pins(void)
{
	static const struct {
		const char *version, *locked, *want, *what;
	} cases[] = {
		{ NULL, INTEGRITY, "pinokiod is not in the image ('/" PREFIX "/node_modules/pinokiod/package.json' is missing)", "not baked" },
		{ "5.0.0", INTEGRITY, "the image has pinokiod 5.0.0, not the pinned " VERSION, "another version" },
		{ VERSION, OTHER_INTEGRITY, "installed from a lockfile pinning sha512-NUBU5bugdx7ethRBZ8fffAIsGTX7RYXJOi6iTVbcayX6b9XKGA..., not the pinned " INTEGRITY,
		  "another integrity" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *root = pinokio_tree(cases[i].version, cases[i].locked, NULL);
		struct t_result r = t_run(root, NULL);
		tap_contains(r.out, "step=pinokio state=failed", "%s: the step fails", cases[i].what);
		tap_contains(r.out, cases[i].want, "%s: saying so", cases[i].what);
		tap_ok(!t_exists(root, "etc/systemd/system/pinokio.service") && !t_exists(root, "home/pinokio"),
		       "%s: nothing written", cases[i].what);
		t_result_free(&r);
		t_cleanup(root);
	}
}

static void test_apply(void)
{
	char *root = pinokio_tree(VERSION, INTEGRITY, NULL);
	/* An app the user already has (installed, edited): left alone. A link the user planted in
	 * an app directory the step fills: replaced, never followed. */
	t_write(root, "home/pinokio/pinokio/api/ollama/pinokio.js", "// the user's own\n");
	t_write(root, "outside", "sentinel\n");
	char *link = t_strf("%s/home/pinokio/pinokio/api/comfyui/install.js", root);
	t_write(root, "home/pinokio/pinokio/api/comfyui/.keep", "");
	tap_ok(symlink("/outside", link) == 0, "a symlink planted at api/comfyui/install.js");
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "step=pinokio state=pending Pinokio is set up; it starts, and is checked, on the running system",
		     "a tree: the step is pending (pinokiod starts on the running system)");
	char *su = t_read(root, "etc/sysusers.d/pmoves-pinokio.conf");
	tap_contains(su, "u pinokio - \"Pinokio\" /home/pinokio /bin/bash\n", "sysusers: a user pinokio with a login shell");
	char *unit = t_read(root, "etc/systemd/system/pinokio.service");
	tap_contains(unit, "ExecStart=/usr/bin/node /usr/lib/pmoves/pinokiod/node_modules/pinokiod/script/index.js\n",
		     "unit: pinokiod's script from the baked tree");
	tap_contains(unit, "User=pinokio\n", "unit: as the user");
	tap_contains(unit, "Environment=\"HOME=/home/pinokio\" \"PINOKIO_HOME=/home/pinokio/pinokio\"\n", "unit: Pinokio's home");
	tap_contains(unit, "Requires=pmoves-pinokio-firewall.service\n", "unit: requires the firewall");
	tap_contains(unit, "SuccessExitStatus=SIGKILL\n", "unit: pinokiod ends itself with SIGKILL on a stop: a success");
	char *nft = t_read(root, "etc/pmoves/pinokio.nft");
	tap_contains(nft, "\t\tiifname { \"lo\", \"tailscale0\" } tcp dport 42000 accept\n\t\ttcp dport 42000 drop\n",
		     "nft: port 42000 from loopback and the tailnet only");
	if (find_program("nft", NULL) == 0) {
		char *f = t_strf("%s/etc/pmoves/pinokio.nft", root);
		char *argv[] = { "nft", "-c", "-f", f, NULL };
		_cleanup_free_ char *out = NULL;
		int rc = run_argv(argv, &(struct run_opts){ .capture = &out, .capture_stderr = true });
		tap_ok(rc == 0, "nft: 'nft -c -f' accepts the ruleset");
		if (rc)
			tap_diag("nft: %s", out ? out : "");
		free(f);
	} else
		tap_skip("nft: 'nft -c -f' accepts the ruleset", "nft is not installed (package nftables)");
	char *calls = t_read(t_beside(root, "calls"), NULL);
	tap_contains(calls, "systemd-sysusers /etc/sysusers.d/pmoves-pinokio.conf", "systemd-sysusers made the user");
	tap_contains(calls, "enable pmoves-pinokio-firewall.service\n", "the firewall unit enabled");
	tap_contains(calls, "enable pinokio.service\n", "pinokio.service enabled");

	struct stat st = t_stat(root, "home/pinokio");
	tap_ok(st.st_uid == UID && (st.st_mode & 07777) == 0750, "/home/pinokio: the user's, 0750");
	st = t_stat(root, "home/pinokio/pinokio/api");
	tap_ok(st.st_uid == UID, "Pinokio's api/: the user's");
	char *js = t_read(root, "home/pinokio/pinokio/api/comfyui/pinokio.js");
	tap_is_str(js, "module.exports = { title: \"ComfyUI\" }\n", "comfyui: its launcher copied from the image");
	st = t_stat(root, "home/pinokio/pinokio/api/comfyui/sub/deep.json");
	tap_ok(st.st_uid == UID && (st.st_mode & 07777) == 0644, "comfyui: a file two levels down copied, the user's");
	struct stat lst;
	char *inst = t_strf("%s/home/pinokio/pinokio/api/comfyui/install.js", root);
	tap_ok(lstat(inst, &lst) == 0 && S_ISREG(lst.st_mode), "comfyui: the planted symlink is now the launcher's file");
	char *outside = t_read(root, "outside");
	tap_is_str(outside, "sentinel\n", "... and what it pointed at is untouched");
	char *mine = t_read(root, "home/pinokio/pinokio/api/mine/pinokio.js");
	tap_is_str(mine, "module.exports = { title: \"Mine\" }\n", "mine: the machine's own app (/etc/pmoves/pinokio) copied");
	char *own = t_read(root, "home/pinokio/pinokio/api/ollama/pinokio.js");
	tap_is_str(own, "// the user's own\n", "ollama: already in the user's api/: left alone");
	free(su), free(unit), free(nft), free(calls), free(js), free(inst), free(outside), free(mine), free(own), free(link);
	t_result_free(&r);

	/* A source app with a symlink in it: refused, naming it. */
	t_write(root, "etc/pmoves/pinokio/bad/pinokio.js", "x\n");
	char *bad = t_strf("%s/etc/pmoves/pinokio/bad/start.js", root);
	tap_ok(symlink("/etc/shadow", bad) == 0, "an app with a symlink in it");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=pinokio state=failed app 'bad': 'start.js' is not a file or a directory",
		     "the app with a symlink: refused, naming it");
	tap_ok(!t_exists(root, "home/pinokio/pinokio/api/bad/pinokio.js"), "... its launcher not installed (the app is not whole)");
	free(bad);
	t_result_free(&r);
	t_cleanup(root);

	/* The user (a shell through pinokiod) puts a link where the step makes a directory of
	 * theirs: the step does not follow it, and gives nothing away. */
	static const char *const planted[] = { "home/pinokio/pinokio/api", "home/pinokio/pinokio" };
	for (size_t i = 0; i < ARRAY_SIZE(planted); i++) {
		root = pinokio_tree(VERSION, INTEGRITY, NULL);
		t_write(root, "etc/secret/keep", "root's\n");
		char *dir = t_strf("%s/%s", root, planted[i]), *parent = t_strf("%s", dir);
		*strrchr(parent, '/') = '\0';
		mkdir_p(parent, 0755);
		tap_ok(symlink("/etc/secret", dir) == 0, "a link planted at /%s", planted[i]);
		r = t_run(root, NULL);
		tap_contains(r.out, "step=pinokio state=failed cannot make '/", "link at /%s: the step fails", planted[i]);
		tap_contains(r.out, "(a symbolic link on the way)", "... saying why");
		struct stat est = t_stat(root, "etc/secret"), kst = t_stat(root, "etc/secret/keep");
		tap_ok(est.st_uid == 0 && kst.st_uid == 0 && !t_exists(root, "etc/secret/comfyui"),
		       "... and what it leads to stays root's, nothing copied there");
		free(dir), free(parent);
		t_result_free(&r);
		t_cleanup(root);
	}

	/* "apps" picks them. */
	root = pinokio_tree(VERSION, INTEGRITY, "\"apps\": [\"ollama\"], \"allow\": [\"tailscale0\", \"bat0\"]");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=pinokio state=pending", "apps [ollama]: pending");
	tap_ok(t_exists(root, "home/pinokio/pinokio/api/ollama/pinokio.js") && !t_exists(root, "home/pinokio/pinokio/api/comfyui") &&
		       !t_exists(root, "home/pinokio/pinokio/api/mine"),
	       "apps [ollama]: that one only");
	nft = t_read(root, "etc/pmoves/pinokio.nft");
	tap_contains(nft, "iifname { \"lo\", \"tailscale0\", \"bat0\" } tcp dport 42000 accept", "allow: the interfaces given");
	free(nft);
	t_result_free(&r);
	t_cleanup(root);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root to make the test trees' files the user's");
	test_config();
	test_pins();
	test_apply();
	return tap_done();
}
