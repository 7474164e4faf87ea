/* The QEMU runner's pieces that need no boot: console cleaning, architecture detection, the
 * accelerator choice (a real KVM probe). Boots are in tests/e2e/run.t. */
#include "qemu.h"
#include "run.h"
#include "tap.h"
#include "util.h"

#include <fcntl.h>

static void clean_is(const char *in, const char *want)
{
	char buf[256];
	size_t n = strlen(in);
	memcpy(buf, in, n + 1);
	n = qemu_console_clean(buf, n);
	buf[n] = '\0';
	tap_is_str(buf, want, "console_clean of a %zu-byte line", strlen(in));
}

static int make_gpt(const char *path, const char *type)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, 8 << 20) < 0)
		return -errno;
	_cleanup_free_ char *script = NULL;
	if (asprintf(&script, "label: gpt\nstart=2048, size=8192, type=%s\n", type) < 0)
		return -ENOMEM;
	_cleanup_close_ int in = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (in < 0 || write(in, script, strlen(script)) != (ssize_t)strlen(script) || lseek(in, 0, SEEK_SET) < 0)
		return -errno;
	char *argv[] = { "sfdisk", "-q", (char *)path, NULL };
	return run_argv(argv, &(struct run_opts){ .out_fd = -1, .in_fd = in });
}

int main(void)
{
	tap_plan(11);
	clean_is("\033[2J\033[01;01H\033[=3hBdsDxe: ok\r", "BdsDxe: ok");
	clean_is("\033[1m\033[37m\033[40miPXE\033[0m -- x", "iPXE -- x");
	clean_is("Press Ctrl-B...\b \b\b \bnet0", "Press Ctrl-B.net0");
	clean_is("\033]0;title\007login: ", "login: ");

	char dir[] = "/tmp/test-qemu-XXXXXX";
	if (!mkdtemp(dir))
		tap_skip_all("cannot create a temp dir");
	char img[64], man[64];
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	snprintf(man, sizeof(man), "%s/manifest.json", dir);

	const char *arch = NULL, *how = NULL;
	int r = make_gpt(img, "b921b045-1df0-41c3-af44-4c6f280d3fae");
	tap_is_int(r, 0, "sfdisk writes a GPT with a DPS arm64 root partition");
	r = qemu_detect_arch(img, &arch, &how);
	tap_ok(r == 0 && arch && STREQ(arch, "aarch64") && STREQ(how, "GPT root partition type"),
	       "arch from the GPT root partition type: %s (%s)", arch ? arch : "-", how ? how : "-");
	write_file_atomic(man, "{\"arch\": \"amd64\"}", 17, 0644);
	r = qemu_detect_arch(img, &arch, &how);
	tap_ok(r == 0 && STREQ(arch, "x86_64") && STREQ(how, "manifest.json"),
	       "manifest.json beside the image wins: %s (%s)", arch, how);
	write_file_atomic(man, "{\"arch\": \"riscv64\"}", 19, 0644);
	tap_is_int(qemu_detect_arch(img, &arch, &how), -EINVAL, "an architecture we cannot boot is an error");
	unlink(man);
	make_gpt(img, "0fc63daf-8483-4772-8e79-3d69d8477de4");
	tap_is_int(qemu_detect_arch(img, &arch, &how), -ENODATA, "no manifest and no DPS root type: unknown");
	rm_rf(dir);

	const char *accel = NULL;
	_cleanup_free_ char *why = NULL;
	r = qemu_pick_accel(NULL, "x86_64", &accel, &why);
	tap_ok(r == 0 && accel && (STREQ(accel, "kvm") || STREQ(accel, "tcg")) && why && *why,
	       "the KVM probe picks kvm or tcg with a reason: %s (%s)", accel ? accel : "-", why ? why : "-");
	free(TAKE_PTR(why));
	r = qemu_pick_accel(NULL, "aarch64", &accel, &why);
	tap_ok(r == 0 && STREQ(accel, "tcg"), "aarch64 guests on this x86_64 host use tcg (%s)", why ? why : "-");
	return tap_done();
}
