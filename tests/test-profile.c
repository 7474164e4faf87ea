/* Profiles: bad profiles each give one message naming the file, the JSON path and the problem;
 * good ones resolve with their defaults and layout; the list/show/validate commands of the real
 * binary give the documented output and exit codes. Fixtures are written into a mkdtemp
 * directory used as PMOVES_DATADIR. */
#include "arch.h"
#include "artifacts.h"
#include "elf-needs.h"
#include "npm-trees.h"
#include "profile-schema.h"
#include "profile.h"
#include "registry.h"
#include "rootfs.h"
#include "run.h"
#include "table.h"
#include "tap.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <json-c/json.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)

static char tmp[] = "/tmp/test-profile-XXXXXX";

#define ESP "{\"name\":\"esp\",\"type\":\"esp\",\"size\":\"256M\",\"fs\":\"vfat\",\"mount\":\"/boot/efi\"}"
#define ROOT "{\"name\":\"root\",\"type\":\"root\",\"size\":\"fill\",\"fs\":\"ext4\",\"mount\":\"/\"}"
#define PARTS(...) "\"partitions\":[" __VA_ARGS__ "]"
#define DISK(...) "\"disk\":{\"size\":\"4G\"," PARTS(__VA_ARGS__) "}"
#define GOOD_DISK DISK(ESP "," ROOT)
/* A disk of SIZE (JSON text) with MORE keys before its partitions. */
#define PI_FW "{\"name\":\"firmware\",\"type\":\"firmware\",\"size\":\"256M\",\"fs\":\"vfat\",\"mount\":\"/boot/firmware\"}"
#define ROOT_SIZED "{\"name\":\"root\",\"type\":\"root\",\"size\":\"1G\",\"fs\":\"ext4\",\"mount\":\"/\"}"
#define PI_DISK(...) "\"disk\":{\"table\":\"mbr\",\"size\":\"4G\"," PARTS(__VA_ARGS__) "}"
#define XL_BOOT(more) "\"arch\":\"aarch64\",\"boot\":{\"loader\":\"extlinux\"" more "}"
#define XL_ROOT "{\"name\":\"APP\",\"type\":\"root\",\"size\":\"fill\",\"fs\":\"ext4\",\"mount\":\"/\"}"
#define XL_DISK "\"disk\":{\"size\":\"4G\"," PARTS(XL_ROOT) "}"
/* rootfs.apt_sources: a good source with KEY's value replaced (or added) */
#define APT_SRC(name, more) "{\"name\":\"" name "\",\"url\":\"https://r.example/jetson/t234\",\"suite\":\"r36.4\"," \
	"\"components\":[\"main\"],\"key\":\"k.asc\",\"fingerprint\":\"0123456789ABCDEF0123456789ABCDEF01234567\"," \
	"\"release_sha256\":\"" SHA0 "\"" more "}"
#define SHA0 "0000000000000000000000000000000000000000000000000000000000000000"
#define APT(...) "{\"rootfs\":{\"apt_sources\":[" __VA_ARGS__ "]}," GOOD_DISK "}"
/* rootfs.npm with PACKAGES and the trees TREES (the fixtures under tmp/npm/: test_bad) */
#define NPM(packages, ...) "{\"rootfs\":{\"packages\":[" packages "],\"npm\":[" __VA_ARGS__ "]}," GOOD_DISK "}"
#define NPM_TREE(name, prefix, more) "{\"name\":\"" name "\",\"prefix\":\"" prefix "\"" more "}"
#define PI_BOOT(lines) "\"arch\":\"aarch64\",\"boot\":{\"loader\":\"raspi\",\"config\":[" lines "]}"
#define AUTO_DISK(size, more) "\"disk\":{\"size\":" size "," more PARTS(ESP "," ROOT) "}"

static void write_at(const char *rel, const char *content)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/%s", tmp, rel) < 0)
		abort();
	_cleanup_free_ char *dir = strdup(path);
	*strrchr(dir, '/') = '\0';
	if (mkdir_p(dir, 0755) < 0 || write_file_atomic(path, content, strlen(content), 0644) < 0) {
		printf("Bail out! cannot write fixture '%s'\n", path);
		exit(1);
	}
}

/* What the JSON Schema (pmoves-image schema) says of the file on its own: it refuses it too
 * (keys, types, enumerations, formats), or accepts it (a rule of the validator alone: values
 * that must fit, rules across fields or files, of one rootfs source or filesystem), or the file
 * is not JSON. */
enum schema_says { SCHEMA_REFUSES, SCHEMA_ACCEPTS, SCHEMA_NOT_JSON };

struct bad {
	const char *file;    /* under tmp/profiles/ */
	const char *content; /* NULL: the file is already written */
	const char *err_file; /* file the message names, under tmp/profiles/ (NULL: FILE) */
	const char *path;     /* JSON path in the message, or NULL for file-level problems */
	const char *words[3];
	enum schema_says schema;
};

static const struct bad bad_cases[] = {
	{ "artifact-version.json", "{\"artifacts\":[{\"name\":\"t\",\"version\":5}]," GOOD_DISK "}", NULL, ".artifacts[0].version",
	  { "expected a string" }, SCHEMA_REFUSES },
	{ "unknown-top.json", "{\"nmae\":\"x\"," GOOD_DISK "}", NULL, ".nmae", { "unknown key", "known keys: name" }, SCHEMA_REFUSES },
	{ "unknown-rootfs.json", "{\"rootfs\":{\"sute\":\"trixie\"}," GOOD_DISK "}", NULL, ".rootfs.sute",
	  { "unknown key", "suite" }, SCHEMA_REFUSES },
	{ "unknown-part.json",
	  "{" DISK(ESP ",{\"name\":\"root\",\"type\":\"root\",\"size\":\"fill\",\"fs\":\"ext4\",\"mnt\":\"/\"}") "}", NULL,
	  ".disk.partitions[1].mnt", { "unknown key", "mount" }, SCHEMA_REFUSES },
	{ "unknown-odd-key.json", "{\"boot\":{\"loader x\":\"a\"}," GOOD_DISK "}", NULL, ".boot[\"loader x\"]",
	  { "unknown key" }, SCHEMA_REFUSES },
	{ "type-arch.json", "{\"arch\":64," GOOD_DISK "}", NULL, ".arch", { "expected a string, got a number" }, SCHEMA_REFUSES },
	{ "type-bootable.json",
	  "{" DISK("{\"name\":\"esp\",\"type\":\"esp\",\"size\":\"256M\",\"fs\":\"vfat\",\"bootable\":\"yes\"}," ROOT) "}",
	  NULL, ".disk.partitions[0].bootable", { "expected a boolean, got a string" }, SCHEMA_REFUSES },
	{ "type-packages.json", "{\"rootfs\":{\"packages\":\"vim\"}," GOOD_DISK "}", NULL, ".rootfs.packages",
	  { "expected an array, got a string" }, SCHEMA_REFUSES },
	{ "type-part.json", "{" DISK("\"esp\"") "}", NULL, ".disk.partitions[0]", { "expected an object, got a string" }, SCHEMA_REFUSES },
	{ "type-null.json", "{\"rootfs\":null," GOOD_DISK "}", NULL, ".rootfs", { "expected an object, got null" }, SCHEMA_REFUSES },
	{ "size-12q.json",
	  "{" DISK(ESP ",{\"name\":\"root\",\"type\":\"root\",\"size\":\"12Q\",\"fs\":\"ext4\",\"mount\":\"/\"}") "}", NULL,
	  ".disk.partitions[1].size", { "\"12Q\" is not a size (use 512M, 4G, or \"fill\")" }, SCHEMA_REFUSES },
	{ "size-neg.json",
	  "{" DISK(ESP ",{\"name\":\"root\",\"type\":\"root\",\"size\":\"-1G\",\"fs\":\"ext4\",\"mount\":\"/\"}") "}", NULL,
	  ".disk.partitions[1].size", { "\"-1G\" is not a size" }, SCHEMA_REFUSES },
	{ "size-huge.json", "{\"disk\":{\"size\":\"99992000000T\"," PARTS(ESP "," ROOT) "}}", NULL, ".disk.size",
	  { "\"99992000000T\"", "too large" }, SCHEMA_ACCEPTS },
	{ "size-zero.json",
	  "{" DISK("{\"name\":\"esp\",\"type\":\"esp\",\"size\":\"0\",\"fs\":\"vfat\",\"mount\":\"/boot/efi\"}," ROOT) "}",
	  NULL, ".disk.partitions[0].size", { "\"0\"", "larger than 0" }, SCHEMA_ACCEPTS },
	{ "size-512.json",
	  "{" DISK("{\"name\":\"esp\",\"type\":\"esp\",\"size\":\"1000\",\"fs\":\"vfat\",\"mount\":\"/boot/efi\"}," ROOT) "}",
	  NULL, ".disk.partitions[0].size", { "\"1000\"", "not a multiple of 512" }, SCHEMA_ACCEPTS },
	{ "disk-small.json", "{\"disk\":{\"size\":\"1M\"," PARTS(ESP "," ROOT) "}}", NULL, ".disk.size",
	  { "too small", "2M" }, SCHEMA_ACCEPTS },
	{ "disk-missing.json", "{\"arch\":\"x86_64\"}", NULL, ".disk", { "missing" }, SCHEMA_REFUSES },
	{ "overlap.json",
	  "{" DISK(ESP ",{\"name\":\"root\",\"type\":\"root\",\"start\":\"100M\",\"size\":\"fill\",\"fs\":\"ext4\","
		       "\"mount\":\"/\"}") "}",
	  NULL, ".disk.partitions[1].start", { "'root' overlaps partition 'esp'", "257.0 MiB" }, SCHEMA_ACCEPTS },
	{ "too-big.json",
	  "{" DISK(ESP ",{\"name\":\"root\",\"type\":\"root\",\"size\":\"4G\",\"fs\":\"ext4\",\"mount\":\"/\"}") "}", NULL,
	  ".disk.partitions[1].size", { "'root' does not fit the 4G disk", "257.0 MiB too large" }, SCHEMA_ACCEPTS },
	{ "two-fills.json",
	  "{" DISK(ESP "," ROOT ",{\"name\":\"data\",\"type\":\"linux\",\"size\":\"fill\",\"fs\":\"ext4\"}") "}", NULL,
	  ".disk.partitions[2].size", { "two \"fill\" partitions, 'root' and 'data'" }, SCHEMA_ACCEPTS },
	{ "fill-not-last.json", "{" DISK(ROOT "," ESP) "}", NULL, ".disk.partitions[0].size",
	  { "only allowed for the last partition", "'root' is followed by 'esp'" }, SCHEMA_ACCEPTS },
	{ "start-early.json",
	  "{" DISK("{\"name\":\"esp\",\"type\":\"esp\",\"start\":\"0\",\"size\":\"256M\",\"fs\":\"vfat\"}," ROOT) "}", NULL,
	  ".disk.partitions[0].start", { "starts before the first usable byte", "1.0 MiB" }, SCHEMA_ACCEPTS },
	{ "start-unaligned.json",
	  "{" DISK("{\"name\":\"esp\",\"type\":\"esp\",\"start\":\"1536K\",\"size\":\"256M\",\"fs\":\"vfat\"}," ROOT) "}",
	  NULL, ".disk.partitions[0].start", { "not a multiple of 1 MiB" }, SCHEMA_ACCEPTS },
	{ "fill-tiny.json",
	  "{" DISK("{\"name\":\"esp\",\"type\":\"esp\",\"size\":\"4094M\",\"fs\":\"vfat\"}," ROOT) "}", NULL,
	  ".disk.partitions[1].size", { "\"fill\" leaves only", "'root'", "at least 1 MiB" }, SCHEMA_ACCEPTS },
	{ "no-esp.json", "{" DISK(ROOT) "}", NULL, ".disk.partitions",
	  { "boot loader 'systemd-boot'", "needs a partition of type \"esp\" with fs \"vfat\"" }, SCHEMA_ACCEPTS },
	{ "esp-ext4.json",
	  "{" DISK("{\"name\":\"esp\",\"type\":\"esp\",\"size\":\"256M\",\"fs\":\"ext4\"}," ROOT) "}", NULL,
	  ".disk.partitions[0].fs", { "'systemd-boot'", "fs \"vfat\"" }, SCHEMA_ACCEPTS },
	{ "arch.json", "{\"arch\":\"sparc\"," GOOD_DISK "}", NULL, ".arch",
	  { "unknown architecture \"sparc\"", "'x86_64', 'aarch64'" }, SCHEMA_REFUSES },
	{ "loader.json", "{\"boot\":{\"loader\":\"grub9\"}," GOOD_DISK "}", NULL, ".boot.loader",
	  { "unknown boot loader \"grub9\"" }, SCHEMA_REFUSES },
	{ "fs.json",
	  "{" DISK(ESP ",{\"name\":\"root\",\"type\":\"root\",\"size\":\"fill\",\"fs\":\"btrfs\",\"mount\":\"/\"}") "}",
	  NULL, ".disk.partitions[1].fs", { "unknown filesystem \"btrfs\"" }, SCHEMA_REFUSES },
	{ "ptype.json",
	  "{" DISK(ESP ",{\"name\":\"root\",\"type\":\"bogus\",\"size\":\"fill\",\"fs\":\"ext4\",\"mount\":\"/\"}") "}",
	  NULL, ".disk.partitions[1].type", { "unknown partition type \"bogus\"", "'esp', 'xbootldr', 'root'" }, SCHEMA_REFUSES },
	{ "output.json", "{\"outputs\":[\"iso\"]," GOOD_DISK "}", NULL, ".outputs[0]", { "unknown output \"iso\" (known: 'raw', 'bmap', 'zst', 'xz', 'qcow2', 'pxe', 'microvm')" }, SCHEMA_REFUSES },
	{ "direct.json", "{\"boot\":{\"loader\":\"direct\"},\"outputs\":[\"raw\"]," GOOD_DISK "}", NULL, ".boot.loader",
	  { "boot loader 'direct' puts none on the disk", "output 'microvm'" }, SCHEMA_ACCEPTS },
	{ "microvm-home.json", "{\"boot\":{\"loader\":\"direct\"},\"outputs\":[\"microvm\"]," DISK(ROOT_SIZED ",{\"name\":\"home\",\"type\":\"linux\",\"size\":\"1G\",\"fs\":\"ext4\",\"mount\":\"/home\"}") "}",
	  NULL, ".disk.partitions[1].mount", { "output 'microvm' gives a sandbox the root filesystem only", "'/home'" }, SCHEMA_ACCEPTS },
	{ "guest-missing.json", "{\"sandbox_guest\":\"no-such-guest\"," GOOD_DISK "}", NULL, ".sandbox_guest",
	  { "profile 'no-such-guest' not found (looked for '", "/profiles/no-such-guest.json'" }, SCHEMA_ACCEPTS },
	{ "guest-raw.json", "{\"sandbox_guest\":\"good-parent\"," GOOD_DISK "}", NULL, ".sandbox_guest",
	  { "profile 'good-parent' (", "has no output \"microvm\": a sandbox guest is a microvm for x86_64" }, SCHEMA_ACCEPTS },
	{ "guest-arch.json", "{\"sandbox_guest\":\"guest-arm\"," GOOD_DISK "}", NULL, ".sandbox_guest",
	  { "profile 'guest-arm' (", "is for another architecture" }, SCHEMA_ACCEPTS },
	{ "guest-nested.json", "{\"sandbox_guest\":\"guest-inner\"," GOOD_DISK "}", NULL, ".sandbox_guest",
	  { "profile 'guest-inner': ", "guest-inner.json: .sandbox_guest: a sandbox guest has no \"sandbox_guest\" of its own" }, SCHEMA_ACCEPTS },
	{ "guest-name.json", "{\"sandbox_guest\":\"../guest-ok\"," GOOD_DISK "}", NULL, ".sandbox_guest",
	  { "\"../guest-ok\"" }, SCHEMA_REFUSES },
	{ "output-dup.json", "{\"outputs\":[\"raw\",\"raw\"]," GOOD_DISK "}", NULL, ".outputs[1]", { "listed twice" }, SCHEMA_REFUSES },
	{ "source.json", "{\"rootfs\":{\"source\":\"debootstrap\"}," GOOD_DISK "}", NULL, ".rootfs.source",
	  { "unknown rootfs source \"debootstrap\"" }, SCHEMA_REFUSES },
	{ "cycle-a.json", "{\"extends\":\"cycle-b\"," GOOD_DISK "}", "cycle-b.json", ".extends",
	  { "extends cycle", "cycle-a.json' -> '", "cycle-b.json' -> '" }, SCHEMA_ACCEPTS },
	{ "cycle-b.json", "{\"extends\":\"cycle-a\"}", "cycle-a.json", ".extends", { "extends cycle" }, SCHEMA_ACCEPTS },
	{ "self.json", "{\"extends\":\"self\"," GOOD_DISK "}", NULL, ".extends", { "extends cycle", "self.json' -> '" }, SCHEMA_ACCEPTS },
	{ "orphan.json", "{\"extends\":\"no-such-parent\"," GOOD_DISK "}", NULL, ".extends",
	  { "parent profile 'no-such-parent' not found", "looked for", "no-such-parent.json" }, SCHEMA_ACCEPTS },
	{ "syntax.json", "{\n  \"name\": \"x\",\n  \"arch\" \"x86_64\"\n}\n", NULL, NULL,
	  { "invalid JSON at line 3, column 10" }, SCHEMA_NOT_JSON },
	{ "syntax-comma.json", "{\"arch\": \"x86_64\",}", NULL, NULL, { "invalid JSON at line 1, column 19" }, SCHEMA_NOT_JSON },
	{ "syntax-eof.json", "{\n  \"arch\": [\n", NULL, NULL, { "invalid JSON", "unexpected end of file" }, SCHEMA_NOT_JSON },
	{ "trailing.json", "{\"arch\":\"x86_64\"," GOOD_DISK "} {}", NULL, NULL, { "invalid JSON at line 1" }, SCHEMA_NOT_JSON },
	{ "empty.json", "", NULL, NULL, { "file is empty" }, SCHEMA_NOT_JSON },
	{ "blank.json", " \n\t\n", NULL, NULL, { "file is empty" }, SCHEMA_NOT_JSON },
	{ "array.json", "[1, 2]", NULL, NULL, { "the top level must be a JSON object, not an array" }, SCHEMA_REFUSES },
	{ "tarball-nosum.json", "{\"rootfs\":{\"source\":\"tarball\",\"url\":\"https://example.invalid/r.tar\"}," GOOD_DISK "}",
	  NULL, ".rootfs.url", { "refused without \"sha256\"" }, SCHEMA_ACCEPTS },
	{ "tarball-http.json",
	  "{\"rootfs\":{\"source\":\"tarball\",\"url\":\"http://example.invalid/r.tar\",\"sha256\":"
	  "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}," GOOD_DISK "}",
	  NULL, ".rootfs.url", { "not an https:// URL" }, SCHEMA_ACCEPTS },
	{ "tarball-both.json",
	  "{\"rootfs\":{\"source\":\"tarball\",\"path\":\"r.tar\",\"url\":\"https://example.invalid/r.tar\",\"sha256\":"
	  "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}," GOOD_DISK "}",
	  NULL, ".rootfs", { "exactly one of \"path\" and \"url\"" }, SCHEMA_ACCEPTS },
	{ "tarball-sum.json",
	  "{\"rootfs\":{\"source\":\"tarball\",\"path\":\"r.tar\",\"sha256\":\"ABC\"}," GOOD_DISK "}", NULL,
	  ".rootfs.sha256", { "not a SHA-256" }, SCHEMA_ACCEPTS },
	{ "mmdebstrap-path.json", "{\"rootfs\":{\"path\":\"r.tar\"}," GOOD_DISK "}", NULL, ".rootfs.path",
	  { "not used by source \"mmdebstrap\"" }, SCHEMA_ACCEPTS },
	{ "hostname.json", "{\"firstboot\":{\"hostname\":\"-bad_host\"}," GOOD_DISK "}", NULL, ".firstboot.hostname",
	  { "\"-bad_host\" is not a hostname" }, SCHEMA_REFUSES },
	{ "hostname-long.json",
	  "{\"firstboot\":{\"hostname\":\"a123456789b123456789c123456789d123456789e123456789f123456789g12345\"}," GOOD_DISK "}",
	  NULL, ".firstboot.hostname", { "too long: 66 characters, at most 64" }, SCHEMA_REFUSES },
	{ "fb-artifacts.json", "{\"firstboot\":{\"artifacts\":[]}," GOOD_DISK "}", NULL, ".firstboot.artifacts",
	  { "listed at the top level of a profile" }, SCHEMA_REFUSES },
	{ "hostname-type.json", "{\"firstboot\":{\"hostname\":7}," GOOD_DISK "}", NULL, ".firstboot.hostname",
	  { "expected a string" }, SCHEMA_REFUSES },
	{ "dup-name.json",
	  "{" DISK(ESP ",{\"name\":\"esp\",\"type\":\"root\",\"size\":\"fill\",\"fs\":\"ext4\",\"mount\":\"/\"}") "}", NULL,
	  ".disk.partitions[1].name", { "'esp' is used twice" }, SCHEMA_ACCEPTS },
	{ "dup-mount.json",
	  "{" DISK(ESP ",{\"name\":\"root\",\"type\":\"root\",\"size\":\"fill\",\"fs\":\"ext4\",\"mount\":\"/boot/efi\"}") "}",
	  NULL, ".disk.partitions[1].mount", { "'/boot/efi' is mounted twice", "'esp' and 'root'" }, SCHEMA_ACCEPTS },
	{ "mount-nofs.json",
	  "{" DISK(ESP ",{\"name\":\"srv\",\"type\":\"srv\",\"size\":\"64M\",\"mount\":\"/srv\"}," ROOT) "}", NULL,
	  ".disk.partitions[1].mount", { "'srv' is mounted at '/srv' but has no \"fs\"" }, SCHEMA_ACCEPTS },
	{ "mount-dotdot.json",
	  "{" DISK(ESP ",{\"name\":\"srv\",\"type\":\"srv\",\"size\":\"64M\",\"fs\":\"ext4\",\"mount\":\"/srv/../etc\"}," ROOT) "}",
	  NULL, ".disk.partitions[1].mount", { "'..' component" }, SCHEMA_REFUSES },
	{ "mount-relative.json",
	  "{" DISK(ESP ",{\"name\":\"srv\",\"type\":\"srv\",\"size\":\"64M\",\"fs\":\"ext4\",\"mount\":\"srv\"}," ROOT) "}",
	  NULL, ".disk.partitions[1].mount", { "\"srv\" is not a mount point (an absolute path" }, SCHEMA_REFUSES },
	{ "label-vfat.json",
	  "{" DISK("{\"name\":\"esp\",\"type\":\"esp\",\"size\":\"256M\",\"fs\":\"vfat\",\"label\":\"EFI SYSTEM\"}," ROOT) "}",
	  NULL, ".disk.partitions[0].label", { "\"EFI SYSTEM\"", "vfat" }, SCHEMA_ACCEPTS },
	{ "label-ext4.json",
	  "{" DISK(ESP ",{\"name\":\"root\",\"type\":\"root\",\"size\":\"fill\",\"fs\":\"ext4\",\"mount\":\"/\","
		       "\"label\":\"a-very-long-rootfs\"}") "}",
	  NULL, ".disk.partitions[1].label", { "longer than 16 bytes", "ext4" }, SCHEMA_ACCEPTS },
	{ "pname.json",
	  "{" DISK(ESP ",{\"name\":\"root.1\",\"type\":\"root\",\"size\":\"fill\",\"fs\":\"ext4\",\"mount\":\"/\"}") "}", NULL,
	  ".disk.partitions[1].name", { "\"root.1\" is not a partition name" }, SCHEMA_REFUSES },
	{ "mbr-five.json",
	  "{\"disk\":{\"table\":\"mbr\",\"size\":\"4G\"," PARTS(ESP ","
	  "{\"name\":\"a\",\"type\":\"linux\",\"size\":\"8M\"},{\"name\":\"b\",\"type\":\"linux\",\"size\":\"8M\"},"
	  "{\"name\":\"c\",\"type\":\"linux\",\"size\":\"8M\"}," ROOT) "}}",
	  NULL, ".disk.partitions", { "5 partitions", "the 'mbr' table holds at most 4" }, SCHEMA_ACCEPTS },
	{ "table.json", "{\"disk\":{\"table\":\"apm\",\"size\":\"4G\"," PARTS(ESP "," ROOT) "}}", NULL, ".disk.table",
	  { "unknown partition table \"apm\"" }, SCHEMA_REFUSES },
	{ "no-root.json",
	  "{" DISK(ESP ",{\"name\":\"data\",\"type\":\"linux\",\"size\":\"fill\",\"fs\":\"ext4\",\"mount\":\"/srv\"}") "}",
	  NULL, ".disk.partitions", { "no partition is mounted at \"/\"" }, SCHEMA_ACCEPTS },
	{ "no-parts.json", "{" DISK() "}", NULL, ".disk.partitions", { "empty: at least 1 needed" }, SCHEMA_REFUSES },
	{ "overlay.json", "{\"overlays\":[\"common\",\"nope\"]," GOOD_DISK "}", NULL, ".overlays[1]",
	  { "overlay 'nope' not found", "overlays/nope" }, SCHEMA_ACCEPTS },
	{ "package.json", "{\"rootfs\":{\"packages\":[\"vim\",\"Bad_Pkg\"]}," GOOD_DISK "}", NULL, ".rootfs.packages[1]",
	  { "\"Bad_Pkg\" is not a Debian package name" }, SCHEMA_ACCEPTS },
	{ "variant.json", "{\"rootfs\":{\"variant\":\"tiny\"}," GOOD_DISK "}", NULL, ".rootfs.variant",
	  { "unknown mmdebstrap variant \"tiny\"" }, SCHEMA_ACCEPTS },
	{ "initramfs-category.json", "{\"rootfs\":{\"initramfs_categories\":[\"base\",\"nfs\"]}," GOOD_DISK "}",
	  NULL, ".rootfs.initramfs_categories[1]", { "unknown initramfs-tools module category \"nfs\"", "'usb_storage'" },
	  SCHEMA_REFUSES },
	{ "initramfs-twice.json", "{\"rootfs\":{\"initramfs_categories\":[\"base\",\"mmc\",\"mmc\"]}," GOOD_DISK "}",
	  NULL, ".rootfs.initramfs_categories[2]", { "\"mmc\" is listed twice" }, SCHEMA_REFUSES },
	{ "initramfs-empty.json", "{\"rootfs\":{\"initramfs_categories\":[]}," GOOD_DISK "}", NULL,
	  ".rootfs.initramfs_categories", { "at least 1" }, SCHEMA_REFUSES },
	{ "initramfs-base.json", "{\"rootfs\":{\"initramfs_categories\":[\"mmc\",\"usb_storage\"]}," GOOD_DISK "}",
	  NULL, ".rootfs.initramfs_categories", { "has no \"base\"" }, SCHEMA_ACCEPTS },
	{ "initramfs-extract.json",
	  "{\"rootfs\":{\"variant\":\"extract\",\"initramfs_categories\":[\"base\"]}," GOOD_DISK "}", NULL,
	  ".rootfs.initramfs_categories", { "not used with the variant \"extract\"" }, SCHEMA_ACCEPTS },
	{ "initramfs-module.json", "{\"rootfs\":{\"initramfs_modules\":[\"ext4\",\"sd mod\"]}," GOOD_DISK "}", NULL,
	  ".rootfs.initramfs_modules[1]", { "\"sd mod\" is not a kernel module name" }, SCHEMA_REFUSES },
	{ "initramfs-module-shell.json", "{\"rootfs\":{\"initramfs_modules\":[\"ext4;reboot\"]}," GOOD_DISK "}",
	  NULL, ".rootfs.initramfs_modules[0]", { "is not a kernel module name" }, SCHEMA_REFUSES },
	{ "initramfs-module-long.json",
	  "{\"rootfs\":{\"initramfs_modules\":[\"m2345678901234567890123456789012345678901234567890123456\"]}," GOOD_DISK
	  "}", NULL, ".rootfs.initramfs_modules[0]", { "at most 55" }, SCHEMA_REFUSES },
	{ "initramfs-module-twice.json", "{\"rootfs\":{\"initramfs_modules\":[\"ext4\",\"ext4\"]}," GOOD_DISK "}",
	  NULL, ".rootfs.initramfs_modules[1]", { "\"ext4\" is listed twice" }, SCHEMA_REFUSES },
	{ "initramfs-module-custom.json",
	  "{\"rootfs\":{\"variant\":\"custom\",\"initramfs_modules\":[\"ext4\"]}," GOOD_DISK "}", NULL,
	  ".rootfs.initramfs_modules", { "not used with the variant \"custom\"" }, SCHEMA_ACCEPTS },
	{ "mirror.json", "{\"rootfs\":{\"mirror\":\"ftp://deb.debian.org/debian\"}," GOOD_DISK "}", NULL, ".rootfs.mirror",
	  { "not a mirror URL" }, SCHEMA_ACCEPTS },
	{ "suite.json", "{\"rootfs\":{\"suite\":\"../sid\"}," GOOD_DISK "}", NULL, ".rootfs.suite", { "not a suite name" }, SCHEMA_ACCEPTS },
	{ "name.json", "{\"name\":\"bad name\"," GOOD_DISK "}", NULL, ".name", { "\"bad name\" is not a name (letters, digits" }, SCHEMA_REFUSES },
	{ "description.json", "{\"description\":\"two\\nlines\"," GOOD_DISK "}", NULL, ".description",
	  { "control character" }, SCHEMA_REFUSES },
	{ "cmdline.json", "{\"boot\":{\"cmdline\":\"quiet\\u0007\"}," GOOD_DISK "}", NULL, ".boot.cmdline",
	  { "control character" }, SCHEMA_REFUSES },
	{ "nul-string.json", "{\"rootfs\":{\"packages\":[\"vim\\u0000x\"]}," GOOD_DISK "}", NULL, ".rootfs.packages[0]",
	  { "contains a NUL character" }, SCHEMA_REFUSES },
	{ "extends-name.json", "{\"extends\":\"../base\"," GOOD_DISK "}", NULL, ".extends", { "not a profile name" }, SCHEMA_REFUSES },
	/* Checked per file: an unknown key in a parent names the parent. */
	{ "child-of-typo.json", "{\"extends\":\"typo-parent\"}", "typo-parent.json", ".disk.partitons",
	  { "unknown key" }, SCHEMA_ACCEPTS },
	/* A bad value inherited from a parent names the parent, where the value is. */
	{ "child-of-badsize.json", "{\"extends\":\"badsize-parent\",\"description\":\"child\"}", "badsize-parent.json",
	  ".disk.partitions[1].size", { "\"12Q\" is not a size" }, SCHEMA_ACCEPTS },
	/* ...and a value the child sets names the child. */
	{ "child-badarch.json", "{\"extends\":\"good-parent\",\"arch\":\"mips\"}", NULL, ".arch",
	  { "unknown architecture" }, SCHEMA_REFUSES },
	/* "size": "auto" and its "margin". */
	{ "auto-case.json", "{" AUTO_DISK("\"Auto\"", "") "}", NULL, ".disk.size",
	  { "\"Auto\" is not a size (use 2G, 4G, or \"auto\")" }, SCHEMA_REFUSES },
	{ "auto-no-fill.json",
	  "{\"disk\":{\"size\":\"auto\"," PARTS(ESP ",{\"name\":\"root\",\"type\":\"root\",\"size\":\"1G\",\"fs\":\"ext4\",\"mount\":\"/\"}") "}}",
	  NULL, ".disk.size", { "\"auto\" needs a partition with \"size\": \"fill\"" }, SCHEMA_ACCEPTS },
	{ "auto-fill-no-fs.json",
	  "{\"disk\":{\"size\":\"auto\"," PARTS(ESP ",{\"name\":\"root\",\"type\":\"root\",\"size\":\"1G\",\"fs\":\"ext4\",\"mount\":\"/\"},"
	  "{\"name\":\"data\",\"type\":\"linux\",\"size\":\"fill\"}") "}}",
	  NULL, ".disk.partitions[2].fs", { "the \"fill\" partition 'data'", "has no filesystem" }, SCHEMA_ACCEPTS },
	{ "margin-12q.json", "{" AUTO_DISK("\"auto\"", "\"margin\":\"12Q\",") "}", NULL, ".disk.margin",
	  { "\"12Q\" is not a size (use 1M, 512M, 4G)" }, SCHEMA_REFUSES },
	{ "margin-auto.json", "{" AUTO_DISK("\"auto\"", "\"margin\":\"auto\",") "}", NULL, ".disk.margin",
	  { "\"auto\" is not a size" }, SCHEMA_REFUSES },
	{ "margin-number.json", "{" AUTO_DISK("\"auto\"", "\"margin\":256,") "}", NULL, ".disk.margin",
	  { "expected a string, got a number" }, SCHEMA_REFUSES },
	{ "margin-overflow.json", "{" AUTO_DISK("\"auto\"", "\"margin\":\"99999999999T\",") "}", NULL, ".disk.margin",
	  { "\"99999999999T\" is too large" }, SCHEMA_ACCEPTS },
	{ "margin-table.json", "{" AUTO_DISK("\"auto\"", "\"table\":\"mbr\",\"margin\":\"4T\",") "}", NULL, ".disk.margin",
	  { "\"4T\" is larger than a 'mbr' table allows" }, SCHEMA_ACCEPTS },
	/* The size's problem first, then the margin's (the order of the keys in docs/profiles.md). */
	{ "size-then-margin.json", "{" AUTO_DISK("\"1M\"", "\"margin\":\"2000000T\",") "}", NULL, ".disk.size",
	  { "\"1M\" is too small" }, SCHEMA_ACCEPTS },
	/* boot loader raspi: an MBR card, the firmware partition first at /boot/firmware, and only
	 * dtoverlay=/dtparam= lines of its own for config.txt */
	{ "pi-line.json", "{" PI_BOOT("\"dtparam=audio=off\",\"kernel=evil.img\"") "," PI_DISK(PI_FW "," ROOT) "}", NULL,
	  ".boot.config[1]", { "\"kernel=evil.img\" is not a config.txt line", "dtoverlay=NAME" }, SCHEMA_ACCEPTS },
	{ "pi-newline.json", "{" PI_BOOT("\"dtparam=a=b\\narm_64bit=0\"") "," PI_DISK(PI_FW "," ROOT) "}", NULL,
	  ".boot.config[0]", { "is not a config.txt line" }, SCHEMA_ACCEPTS },
	{ "pi-overlay-eq.json", "{" PI_BOOT("\"dtoverlay=a=b\"") "," PI_DISK(PI_FW "," ROOT) "}", NULL,
	  ".boot.config[0]", { "is not a config.txt line" }, SCHEMA_ACCEPTS },
	{ "pi-fw-second.json", "{" PI_BOOT("") "," PI_DISK(ROOT_SIZED "," PI_FW) "}", NULL, ".disk.partitions",
	  { "needs the \"firmware\" partition first" }, SCHEMA_ACCEPTS },
	{ "pi-fw-mount.json", "{" PI_BOOT("") "," PI_DISK("{\"name\":\"fw\",\"type\":\"firmware\",\"size\":\"256M\",\"fs\":\"vfat\",\"mount\":\"/boot\"}," ROOT) "}",
	  NULL, ".disk.partitions[0].mount", { "at \"/boot/firmware\"", "not \"/boot\"" }, SCHEMA_ACCEPTS },
	{ "pi-gpt.json", "{\"arch\":\"aarch64\",\"boot\":{\"loader\":\"raspi\"},\"disk\":{\"table\":\"gpt\",\"size\":\"4G\"," PARTS(PI_FW "," ROOT) "}}",
	  NULL, ".disk.table", { "boot loader 'raspi' needs a 'mbr' partition table, not 'gpt'" }, SCHEMA_ACCEPTS },
	{ "pi-x86.json", "{\"boot\":{\"loader\":\"raspi\"}," PI_DISK(PI_FW "," ROOT) "}", NULL, ".boot.loader",
	  { "'raspi' cannot boot x86_64" }, SCHEMA_ACCEPTS },
	/* rootfs.apt_sources: each pinned by its key's fingerprint and its InRelease's SHA-256 */
	{ "apt-name.json", APT(APT_SRC("NV", "")), NULL, ".rootfs.apt_sources[0].name", { "\"NV\" is not a source name" },
	  SCHEMA_ACCEPTS },
	{ "apt-dup.json", APT(APT_SRC("nv", "") "," APT_SRC("nv", "")), NULL, ".rootfs.apt_sources[1].name",
	  { "\"nv\" is the name of apt_sources[0] too" }, SCHEMA_ACCEPTS },
	{ "apt-url.json", APT(APT_SRC("nv", ",\"url\":\"ftp://r.example/t234\"")), NULL, ".rootfs.apt_sources[0].url",
	  { "is not a repository URL", "file:///PATH" }, SCHEMA_ACCEPTS },
	{ "apt-fpr.json", APT(APT_SRC("nv", ",\"fingerprint\":\"3716D241\"")), NULL, ".rootfs.apt_sources[0].fingerprint",
	  { "\"3716D241\" is not an OpenPGP v4 fingerprint" }, SCHEMA_ACCEPTS },
	{ "apt-pin.json", APT(APT_SRC("nv", ",\"release_sha256\":\"" "ABCDEF0000000000000000000000000000000000000000000000000000000000" "\"")),
	  NULL, ".rootfs.apt_sources[0].release_sha256", { "is not a SHA-256 (64 lowercase hex digits)" }, SCHEMA_ACCEPTS },
	{ "apt-nine.json", APT(APT_SRC("a", "") "," APT_SRC("b", "") "," APT_SRC("c", "") "," APT_SRC("d", "") "," APT_SRC("e", "") ","
			       APT_SRC("f", "") "," APT_SRC("g", "") "," APT_SRC("h", "") "," APT_SRC("i", "")),
	  NULL, ".rootfs.apt_sources", { "9 elements, at most 8" }, SCHEMA_REFUSES },
	/* rootfs.npm: trees from committed lockfiles, their direct dependencies pinned */
	{ "npm-no-npm.json", NPM("", NPM_TREE("good", "/opt/good", "")), NULL, ".rootfs.npm",
	  { "the image's own npm installs these: add \"npm\"" }, SCHEMA_ACCEPTS },
	{ "npm-missing.json", NPM("\"npm\"", NPM_TREE("nope", "/opt/good", "")), NULL, ".rootfs.npm[0].name",
	  { "npm/nope/package.json': No such file or directory" }, SCHEMA_ACCEPTS },
	{ "npm-range.json", NPM("\"npm\"", NPM_TREE("range", "/opt/good", "")), NULL, ".rootfs.npm[0].name",
	  { "dependency \"left-pad\" \"^1.3.0\" is not pinned" }, SCHEMA_ACCEPTS },
	{ "npm-unlocked.json", NPM("\"npm\"", NPM_TREE("unlocked", "/opt/good", "")), NULL, ".rootfs.npm[0].name",
	  { "does not lock \"left-pad\" at 1.3.0" }, SCHEMA_ACCEPTS },
	{ "npm-v1.json", NPM("\"npm\"", NPM_TREE("v1", "/opt/good", "")), NULL, ".rootfs.npm[0].name",
	  { "is not a lockfile of npm 7 or later" }, SCHEMA_ACCEPTS },
	{ "npm-prefix.json", NPM("\"npm\"", NPM_TREE("good", "/usr", "")), NULL, ".rootfs.npm[0].prefix",
	  { "\"/usr\" is not a directory for the tree" }, SCHEMA_ACCEPTS },
	{ "npm-dots.json", NPM("\"npm\"", NPM_TREE("good", "/opt/../etc/x", "")), NULL, ".rootfs.npm[0].prefix",
	  { "is not a directory for the tree" }, SCHEMA_ACCEPTS },
	{ "npm-varrun.json", NPM("\"npm\"", NPM_TREE("good", "/var/run/x", "")), NULL, ".rootfs.npm[0].prefix",
	  { "is not a directory for the tree" }, SCHEMA_ACCEPTS },
	{ "npm-overlap.json", NPM("\"npm\"", NPM_TREE("good", "/opt/a", "") "," NPM_TREE("good", "/opt/a/b", "")), NULL,
	  ".rootfs.npm[1].prefix", { "'/opt/a/b' overlaps rootfs.npm[0]'s '/opt/a'" }, SCHEMA_ACCEPTS },
	{ "npm-cc.json", NPM("\"npm\"", NPM_TREE("good", "/opt/good", ",\"build_from_source\":[\"left-pad\"]")), NULL,
	  ".rootfs.npm[0].build_from_source", { "add \"build-essential\"" }, SCHEMA_ACCEPTS },
	{ "npm-cc-what.json", NPM("\"npm\",\"build-essential\"", NPM_TREE("good", "/opt/good", ",\"build_from_source\":[\"pty\"]")),
	  NULL, ".rootfs.npm[0].build_from_source[0]", { "\"pty\" is not in" }, SCHEMA_ACCEPTS },
	{ "npm-tarball.json", "{\"rootfs\":{\"source\":\"tarball\",\"path\":\"r.tar\",\"npm\":[" NPM_TREE("good", "/opt/good", "") "]}," GOOD_DISK "}",
	  NULL, ".rootfs.npm", { "not used by source \"tarball\"" }, SCHEMA_ACCEPTS },
	/* boot loader extlinux: the ext4 root first, kernels on it, a device tree path */
	{ "xl-root-second.json", "{" XL_BOOT("") ",\"disk\":{\"size\":\"4G\"," PARTS(ESP "," ROOT) "}}", NULL,
	  ".disk.partitions", { "needs the root partition (mount \"/\") first" }, SCHEMA_ACCEPTS },
	{ "xl-boot-part.json", "{" XL_BOOT("") ",\"disk\":{\"size\":\"4G\"," PARTS("{\"name\":\"APP\",\"type\":\"root\",\"size\":\"2G\",\"fs\":\"ext4\",\"mount\":\"/\"},{\"name\":\"boot\",\"type\":\"linux\",\"size\":\"fill\",\"fs\":\"ext4\",\"mount\":\"/boot\"}") "}}",
	  NULL, ".disk.partitions", { "no partition may be mounted there" }, SCHEMA_ACCEPTS },
	{ "xl-backslash.json", "{" XL_BOOT(",\"cmdline\":\"quiet a=\\\\n\"") "," XL_DISK "}", NULL, ".boot.cmdline",
	  { "may not hold '\\'" }, SCHEMA_ACCEPTS },
	{ "xl-fdt-dotdot.json", "{" XL_BOOT(",\"fdt\":\"nvidia/../../../etc/shadow\"") "," XL_DISK "}", NULL, ".boot.fdt",
	  { "is not a device tree file" }, SCHEMA_ACCEPTS },
	{ "xl-fdt-space.json", "{" XL_BOOT(",\"fdt\":\"a b.dtb\"") "," XL_DISK "}", NULL, ".boot.fdt",
	  { "is not a device tree file" }, SCHEMA_ACCEPTS },
	{ "xl-x86.json", "{\"boot\":{\"loader\":\"extlinux\"}," XL_DISK "}", NULL, ".boot.loader",
	  { "'extlinux' cannot boot x86_64" }, SCHEMA_ACCEPTS },
	{ "fdt-sdboot.json", "{\"boot\":{\"loader\":\"systemd-boot\",\"fdt\":\"a.dtb\"}," GOOD_DISK "}", NULL,
	  ".boot.fdt", { "boot loader 'systemd-boot' takes no device tree" }, SCHEMA_ACCEPTS },
	{ "config-sdboot.json", "{\"boot\":{\"loader\":\"systemd-boot\",\"config\":[\"timeout 3\"]}," GOOD_DISK "}", NULL,
	  ".boot.config", { "boot loader 'systemd-boot' takes no lines" }, SCHEMA_ACCEPTS },
	/* inherited: the parent's margin is named as the parent's */
	{ "child-of-badmargin.json", "{\"extends\":\"badmargin-parent\"}", "badmargin-parent.json", ".disk.margin",
	  { "\"2000000T\" is larger than a 'gpt' table allows" }, SCHEMA_ACCEPTS },
};

#define LEFT_PAD "\"node_modules/left-pad\":{\"version\":\"1.3.0\",\"integrity\":\"sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQEKrwTwZ5GMVxUmTPMq6sODMaJvaUQEgBp1Zmsik6qk3eYQ==\"}"

static void npm_fixtures(void)
{
	write_at("npm/good/package.json", "{\"dependencies\":{\"left-pad\":\"1.3.0\"}}");
	write_at("npm/good/package-lock.json", "{\"lockfileVersion\":3,\"packages\":{\"\":{}," LEFT_PAD "}}");
	write_at("npm/range/package.json", "{\"dependencies\":{\"left-pad\":\"^1.3.0\"}}");
	write_at("npm/range/package-lock.json", "{\"lockfileVersion\":3,\"packages\":{\"\":{}," LEFT_PAD "}}");
	write_at("npm/unlocked/package.json", "{\"dependencies\":{\"left-pad\":\"1.3.0\"}}");
	write_at("npm/unlocked/package-lock.json", "{\"lockfileVersion\":3,\"packages\":{\"\":{}}}");
	write_at("npm/v1/package.json", "{\"dependencies\":{\"left-pad\":\"1.3.0\"}}");
	write_at("npm/v1/package-lock.json", "{\"lockfileVersion\":1,\"dependencies\":{}}");
}

static void test_bad(void)
{
	write_at("profiles/typo-parent.json", "{\"disk\":{\"size\":\"4G\",\"partitons\":[]}}");
	write_at("profiles/badsize-parent.json",
		 "{" DISK(ESP ",{\"name\":\"root\",\"type\":\"root\",\"size\":\"12Q\",\"fs\":\"ext4\",\"mount\":\"/\"}") "}");
	write_at("profiles/good-parent.json", "{" GOOD_DISK "}");
	write_at("profiles/guest-ok.json", "{\"boot\":{\"loader\":\"direct\"},\"outputs\":[\"microvm\"]," DISK(ROOT_SIZED) "}");
	write_at("profiles/guest-arm.json", "{\"arch\":\"aarch64\",\"boot\":{\"loader\":\"direct\"},\"outputs\":[\"microvm\"]," DISK(ROOT_SIZED) "}");
	write_at("profiles/guest-inner.json",
		 "{\"sandbox_guest\":\"guest-ok\",\"boot\":{\"loader\":\"direct\"},\"outputs\":[\"microvm\"]," DISK(ROOT_SIZED) "}");
	write_at("profiles/badmargin-parent.json", "{" AUTO_DISK("\"auto\"", "\"margin\":\"2000000T\",") "}");
	npm_fixtures();
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		_cleanup_free_ char *rel = NULL;
		if (asprintf(&rel, "profiles/%s", bad_cases[i].file) < 0)
			abort();
		write_at(rel, bad_cases[i].content);
	}

	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		const struct bad *b = &bad_cases[i];
		_cleanup_free_ char *path = NULL, *want = NULL, *err = NULL;
		if (asprintf(&path, "%s/profiles/%s", tmp, b->file) < 0 ||
		    asprintf(&want, "%s/profiles/%s: %s%s", tmp, b->err_file ? b->err_file : b->file, b->path ? b->path : "",
			     b->path ? ": " : "") < 0)
			abort();
		struct profile *p = NULL;
		int r = profile_load(path, &p, &err);
		bool ok = r == -EINVAL && p == NULL && err && strncmp(err, want, strlen(want)) == 0 && !strchr(err, '\n');
		for (size_t k = 0; ok && k < ARRAY_SIZE(b->words) && b->words[k]; k++)
			ok = strstr(err + strlen(want), b->words[k]) != NULL;
		if (!tap_ok(ok, "bad profile %s: %s", b->file, b->words[0])) {
			tap_diag("r=%d, expected -EINVAL; message '%s'", r, err ? err : "(null)");
			tap_diag("expected prefix '%s' and words '%s' '%s' '%s'", want, b->words[0],
				 b->words[1] ? b->words[1] : "", b->words[2] ? b->words[2] : "");
		}
		profile_free(p);
	}
}

/* A guest that fits: found beside the profile, its file kept for the build. */
static void test_guest_good(void)
{
	write_at("profiles/guest-good.json", "{\"sandbox_guest\":\"guest-ok\"," GOOD_DISK "}");
	_cleanup_free_ char *path = NULL, *err = NULL, *want = NULL;
	if (asprintf(&path, "%s/profiles/guest-good.json", tmp) < 0 || asprintf(&want, "%s/profiles/guest-ok.json", tmp) < 0)
		abort();
	struct profile *p = NULL;
	int r = profile_load(path, &p, &err);
	tap_ok(r == 0 && p && p->guest_path && STREQ(p->guest_path, want), "sandbox_guest: a microvm profile of the same architecture, found beside it");
	if (r < 0)
		tap_diag("%s", err ? err : "?");
	profile_free(p);
}

static void test_bad_other(void)
{
	char *err = NULL;
	struct profile *p = NULL;
	int r = profile_load("no such name", &p, &err);
	tap_is_int(r, -EINVAL, "a name with a space is refused");
	tap_contains(err, "not a profile name", "... with a message saying so");
	free(err);

	err = NULL;
	r = profile_load("does-not-exist", &p, &err);
	tap_is_int(r, -ENOENT, "a missing profile is -ENOENT");
	_cleanup_free_ char *want = NULL;
	if (asprintf(&want, "%s/profiles/does-not-exist.json: no such file", tmp) < 0)
		abort();
	tap_is_str(err, want, "... and the message names the file it looked for");
	free(err);

	/* What a loader needs comes from its table entry (boot.c), so the expectation does too. */
	const struct boot_loader *l = boot_find("systemd-boot");
	write_at("profiles/mbr-loader.json", "{\"disk\":{\"table\":\"mbr\",\"size\":\"4G\"," PARTS(ESP "," ROOT) "}}");
	_cleanup_free_ char *mbr = NULL, *want_mbr = NULL;
	if (asprintf(&mbr, "%s/profiles/mbr-loader.json", tmp) < 0 ||
	    asprintf(&want_mbr, "%s: .disk.table: boot loader 'systemd-boot' needs a '%s' partition table, not 'mbr'", mbr,
		     l && l->table ? l->table : "") < 0)
		abort();
	err = NULL;
	r = profile_load(mbr, &p, &err);
	if (l && l->table && !STREQ(l->table, "mbr"))
		tap_ok(r == -EINVAL && err && STREQ(err, want_mbr), "systemd-boot on mbr: refused, it needs '%s'", l->table);
	else
		tap_ok(r == 0, "systemd-boot on mbr: accepted, the loader names no table (%s)", err ? err : "ok");
	profile_free(p);
	p = NULL;
	free(err);

	write_at("profiles/arm.json", "{\"arch\":\"aarch64\"," GOOD_DISK "}");
	_cleanup_free_ char *arm = NULL;
	if (asprintf(&arm, "%s/profiles/arm.json", tmp) < 0)
		abort();
	err = NULL;
	r = profile_load(arm, &p, &err);
	if (l && !(l->archs & ARCH_AARCH64))
		tap_ok(r == -EINVAL && err && strstr(err, ".boot.loader: 'systemd-boot' cannot boot aarch64"),
		       "systemd-boot for aarch64: refused");
	else
		tap_ok(r == 0 && STREQ(p->arch->debian, "arm64"), "systemd-boot for aarch64: accepted, Debian arch arm64 (%s)",
		       err ? err : "ok");
	profile_free(p);
	p = NULL;
	free(err);

	/* A chain deeper than PROFILE_MAX_EXTENDS. */
	for (int i = 0; i <= PROFILE_MAX_EXTENDS + 1; i++) {
		char rel[64], body[256];
		snprintf(rel, sizeof(rel), "deep/d%d.json", i);
		if (i == PROFILE_MAX_EXTENDS + 1)
			snprintf(body, sizeof(body), "{" GOOD_DISK "}");
		else
			snprintf(body, sizeof(body), "{\"extends\":\"d%d\"}", i + 1);
		write_at(rel, body);
	}
	char *deep = NULL;
	if (asprintf(&deep, "%s/deep/d0.json", tmp) < 0)
		abort();
	err = NULL;
	r = profile_load(deep, &p, &err);
	tap_is_int(r, -EINVAL, "an extends chain deeper than %d is refused", PROFILE_MAX_EXTENDS);
	tap_contains(err, ".extends: extends chain is deeper than", "... with a message saying so");
	free(err);
	free(deep);

	/* A chain of exactly PROFILE_MAX_EXTENDS hops is fine. */
	if (asprintf(&deep, "%s/deep/d1.json", tmp) < 0)
		abort();
	err = NULL;
	r = profile_load(deep, &p, &err);
	tap_is_int(r, 0, "an extends chain of %d hops loads", PROFILE_MAX_EXTENDS);
	if (r == 0 && !getenv("PMOVES_TEST_KEEP"))
		tap_is_str(p->name, "d1", "... and its name is its own file's");
	else
		tap_ok(0, "... and its name is its own file's (%s)", err);
	profile_free(p);
	free(err);
	free(deep);
}

static const char *key_at(json_object *o, size_t idx)
{
	size_t i = 0;
	json_object_object_foreach(o, key, val)
	{
		(void)val;
		if (i++ == idx)
			return key;
	}
	return NULL;
}

static void test_base_debian(void)
{
	_cleanup_free_ char *buf = NULL;
	if (read_file("profiles/base-debian.json", 1 << 20, &buf, NULL) < 0) {
		tap_ok(0, "profiles/base-debian.json is readable from the current directory");
		return;
	}
	write_at("profiles/base-debian.json", buf);

	struct profile *p = NULL;
	_cleanup_free_ char *err = NULL;
	int r = profile_load("base-debian", &p, &err);
	if (!tap_ok(r == 0, "base-debian loads by name from PMOVES_DATADIR")) {
		tap_diag("%d: %s", r, err ? err : "");
		return;
	}
	_cleanup_free_ char *want_path = NULL;
	if (asprintf(&want_path, "%s/profiles/base-debian.json", tmp) < 0)
		abort();
	tap_is_str(p->path, want_path, "path is where it was found");
	tap_is_str(p->name, "base-debian", "name");
	tap_ok(p->description && strlen(p->description) > 10, "has a description");
	tap_is_str(p->arch->name, "x86_64", "arch");
	tap_is_str(p->arch->debian, "amd64", "Debian's name for the arch");
	tap_is_str(p->hostname, "base-debian", "hostname defaults to the name");
	tap_is_str(p->rootfs.source, "mmdebstrap", "rootfs.source");
	tap_is_str(p->rootfs.suite, "bookworm", "rootfs.suite");
	tap_is_str(p->rootfs.mirror, "http://deb.debian.org/debian", "rootfs.mirror default");
	tap_is_str(p->rootfs.variant, "minbase", "rootfs.variant");
	tap_ok(p->rootfs.components && p->rootfs.components[0] && STREQ(p->rootfs.components[0], "main") &&
		       !p->rootfs.components[1],
	       "rootfs.components default [\"main\"]");
	bool kernel = false, sd_boot = false, ssh = false;
	for (const char **s = p->rootfs.packages; s && *s; s++) {
		kernel = kernel || STREQ(*s, "linux-image-amd64");
		sd_boot = sd_boot || STREQ(*s, "systemd-boot");
		ssh = ssh || STREQ(*s, "openssh-server");
	}
	tap_ok(kernel && sd_boot && ssh, "packages include the kernel, systemd-boot and openssh-server");
	tap_ok(!p->rootfs.path && !p->rootfs.url && !p->rootfs.sha256, "no tarball keys");
	tap_ok(p->rootfs.json && json_object_object_get(p->rootfs.json, "mirror"), "rootfs.json is the resolved section");
	tap_is_str(p->disk.table, "gpt", "disk.table");
	tap_is_int(p->disk.size, 2 * GiB, "disk.size is 2G");
	tap_is_int(p->disk.n_parts, 2, "two partitions");
	const struct part_spec *esp = &p->disk.parts[0], *root = &p->disk.parts[1];
	tap_is_str(esp->name, "esp", "esp name");
	tap_is_str(esp->fs, "vfat", "esp fs");
	tap_is_str(esp->label, "ESP", "esp label defaults to the name, uppercased for vfat");
	tap_is_int(esp->start, 1 * MiB, "esp starts at 1 MiB");
	tap_is_int(esp->size, 256 * MiB, "esp is 256 MiB");
	tap_is_str(root->type, "root", "root type");
	tap_ok(root->fill && !esp->fill, "root is the fill partition");
	tap_is_str(root->label, "root", "root label defaults to the name");
	tap_is_int(root->start, 257 * MiB, "root starts at 257 MiB");
	tap_is_int(root->size, 2 * GiB - table_gpt.tail_reserved - 257 * MiB, "root ends where the backup GPT begins");
	tap_ok(!root->bootable && !esp->bootable, "bootable defaults to false");
	tap_ok(profile_part_by_mount(p, "/") == root && profile_part_by_mount(p, "/boot/efi") == esp &&
		       !profile_part_by_mount(p, "/srv"),
	       "profile_part_by_mount");
	tap_is_str(p->boot.loader, "systemd-boot", "boot.loader");
	tap_is_str(p->boot.cmdline, "console=tty0 console=ttyS0,115200 rw", "boot.cmdline");
	tap_ok(p->overlays && p->overlays[0] && STREQ(p->overlays[0], "common") && !p->overlays[1],
	       "overlays: common");
	tap_ok(p->outputs && p->outputs[0] && STREQ(p->outputs[0], "raw") && !p->outputs[1], "outputs [\"raw\"]");
	tap_ok(p->firstboot == NULL, "no firstboot section");
	const char *order[] = { "name", "description", "arch", "rootfs", "disk", "boot", "overlays", "outputs" };
	bool ordered = true;
	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		ordered = ordered && key_at(p->json, i) && STREQ(key_at(p->json, i), order[i]);
	tap_ok(ordered && !key_at(p->json, ARRAY_SIZE(order)), "resolved keys in canonical order");
	profile_free(p);
}

static void test_child(void)
{
	/* In a directory of its own: "base-debian" is found in profile_dir(). */
	write_at("elsewhere/hub.json",
		 "{\n"
		 "  \"extends\": \"base-debian\",\n"
		 "  \"rootfs\": { \"suite\": \"trixie\" },\n"
		 "  \"disk\": { \"partitions\": [\n"
		 "    { \"name\": \"esp\", \"type\": \"esp\", \"size\": \"512M\", \"fs\": \"vfat\", \"mount\": \"/boot/efi\" },\n"
		 "    { \"name\": \"root\", \"type\": \"root\", \"size\": \"1G\", \"fs\": \"ext4\", \"mount\": \"/\" },\n"
		 "    { \"name\": \"srv\", \"type\": \"srv\", \"start\": \"1600M\", \"size\": \"fill\", \"fs\": \"ext4\",\n"
		 "      \"mount\": \"/srv\", \"label\": \"data\", \"bootable\": true } ] },\n"
		 "  \"firstboot\": { \"hostname\": \"hub\", \"steps\": { \"zeta\": 1, \"alpha\": [true] } }\n"
		 "}\n");
	_cleanup_free_ char *path = NULL, *err = NULL;
	if (asprintf(&path, "%s/elsewhere/hub.json", tmp) < 0)
		abort();
	struct profile *p = NULL;
	int r = profile_load(path, &p, &err);
	if (!tap_ok(r == 0, "a child of base-debian loads")) {
		tap_diag("%d: %s", r, err ? err : "");
		return;
	}
	tap_is_str(p->name, "hub", "name is the child's file name, not inherited");
	tap_contains(p->description, "bookworm", "description is inherited");
	tap_is_str(p->rootfs.suite, "trixie", "nested key overridden (objects merge)");
	tap_is_str(p->rootfs.variant, "minbase", "... and its siblings kept");
	size_t npkg = 0;
	for (const char **s = p->rootfs.packages; s && *s; s++)
		npkg++;
	tap_ok(npkg >= 8, "packages inherited from base-debian (%zu)", npkg);
	tap_is_int(p->disk.size, 2 * GiB, "disk.size inherited");
	tap_is_int(p->disk.n_parts, 3, "partitions replaced (arrays replace)");
	tap_is_int(p->disk.parts[1].start, 513 * MiB, "root after the larger esp");
	tap_is_int(p->disk.parts[1].size, 1 * GiB, "root is 1G");
	tap_is_int(p->disk.parts[2].start, 1600 * MiB, "srv at its explicit start");
	tap_is_int(p->disk.parts[2].size, 2 * GiB - 1600 * MiB - table_gpt.tail_reserved, "srv fills the rest");
	tap_is_str(p->disk.parts[2].label, "data", "explicit label kept");
	tap_ok(p->disk.parts[2].bootable, "bootable true kept");
	tap_is_str(p->hostname, "hub", "hostname from firstboot");
	tap_ok(!json_object_object_get_ex(p->json, "extends", NULL), "\"extends\" is not in the resolved profile");
	json_object *steps = json_object_object_get(p->firstboot, "steps");
	tap_ok(steps && key_at(steps, 0) && STREQ(key_at(steps, 0), "alpha") && STREQ(key_at(steps, 1), "zeta"),
	       "firstboot passed through, keys sorted");
	profile_free(p);
}

/* "size": "auto": the fill partition's size is the build's (0 until then), the margin
 * defaults to 256M and is printed by show; a child may set a fixed size again. */
static void test_auto(void)
{
	write_at("profiles/auto-parent.json", "{" AUTO_DISK("\"auto\"", "") "}");
	write_at("profiles/auto-margin.json", "{\"extends\":\"auto-parent\",\"disk\":{\"margin\":\"1G\"}}");
	write_at("profiles/auto-fixed.json", "{\"extends\":\"auto-margin\",\"disk\":{\"size\":\"8G\"}}");
	write_at("profiles/auto-mbr.json", "{\"boot\":{\"loader\":\"systemd-boot\"},\"disk\":{\"table\":\"gpt\",\"size\":\"auto\","
					    "\"margin\":\"0\"," PARTS(ESP ",{\"name\":\"root\",\"type\":\"root\",\"size\":\"2G\",\"fs\":\"ext4\",\"mount\":\"/\"},"
					    "{\"name\":\"data\",\"type\":\"linux\",\"size\":\"fill\",\"fs\":\"vfat\",\"mount\":\"/data\"}") "}}");
	struct profile *p = NULL;
	_cleanup_free_ char *err = NULL;
	int r = profile_load("auto-parent", &p, &err);
	if (!tap_ok(r == 0, "an auto-sized profile loads")) {
		tap_diag("%d: %s", r, err ? err : "");
		return;
	}
	tap_ok(p->disk.auto_size && p->disk.size == 0, "auto: disk.auto_size, no size before the build");
	tap_is_int(p->disk.margin, 256 * MiB, "auto: the margin defaults to 256M");
	tap_ok(p->disk.parts[1].fill && p->disk.parts[1].start == 257 * MiB && p->disk.parts[1].size == 0,
	       "auto: the fill partition starts after the esp, its size is the build's");
	json_object *disk = json_object_object_get(p->json, "disk");
	tap_is_str(json_object_get_string(json_object_object_get(disk, "margin")), "256M", "auto: show prints the default margin");
	tap_ok(key_at(disk, 1) && STREQ(key_at(disk, 1), "size") && key_at(disk, 2) && STREQ(key_at(disk, 2), "margin"),
	       "auto: \"margin\" printed after \"size\"");
	profile_free(p);

	p = NULL;
	r = profile_load("auto-margin", &p, &err);
	tap_ok(r == 0 && p->disk.auto_size && p->disk.margin == 1 * GiB, "auto: a child sets the margin (1G)");
	profile_free(p);

	p = NULL;
	r = profile_load("auto-fixed", &p, &err);
	tap_ok(r == 0 && !p->disk.auto_size && p->disk.size == 8 * GiB &&
		       p->disk.parts[1].size == 8 * GiB - 257 * MiB - table_gpt.tail_reserved,
	       "auto: a child sets a fixed size again; the inherited margin is unused");
	profile_free(p);

	p = NULL;
	r = profile_load("auto-mbr", &p, &err);
	tap_ok(r == 0 && p->disk.auto_size && p->disk.margin == 0 && p->disk.parts[2].start == (257 + 2048) * MiB,
	       "auto: a vfat fill partition, margin 0");
	if (r < 0)
		tap_diag("%s", err);
	profile_free(p);

	/* The default is not added to a profile with a fixed size. */
	write_at("profiles/fixed.json", "{" GOOD_DISK "}");
	p = NULL;
	r = profile_load("fixed", &p, &err);
	tap_ok(r == 0 && !json_object_object_get_ex(json_object_object_get(p->json, "disk"), "margin", NULL),
	       "a fixed size gets no default margin");
	profile_free(p);
}

/* manifest.json's third_party: each artifact with its "version" and "note" when the profile
 * gives them. */
/* A good rootfs.npm: the lockfiles key the rootfs cache, manifest.json lists the pins. */
static void test_npm(void)
{
	write_at("profiles/npm-good.json", NPM("\"npm\",\"build-essential\"",
					       NPM_TREE("good", "/usr/lib/x/good", ",\"build_from_source\":[\"left-pad\"]")));
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/profiles/npm-good.json", tmp) < 0)
		abort();
	struct profile *p = NULL;
	char *err = NULL;
	int r = profile_load(path, &p, &err);
	if (!tap_ok(r == 0, "rootfs.npm: a tree with a pinned lockfile is accepted")) {
		tap_diag("%s", err ? err : "");
		free(err);
		return;
	}
	_cleanup_free_ char *key1 = npm_trees_key(p);
	tap_ok(key1 && str_starts_with(key1, "npm good /usr/lib/x/good ") && strlen(key1) == strlen("npm good /usr/lib/x/good ") + 130,
	       "rootfs.npm: the cache key has the tree's name, prefix and both files' SHA-256");
	char k1[65], k2[65];
	tap_ok(rootfs_cache_key(p, NULL, k1) == 0, "rootfs.npm: the rootfs cache key is made");
	write_at("npm/good/package-lock.json", "{\"lockfileVersion\":3,\"packages\":{\"\":{}," LEFT_PAD ",\"x\":{}}}");
	_cleanup_free_ char *key2 = npm_trees_key(p);
	tap_ok(key2 && !STREQ(key1, key2) && rootfs_cache_key(p, NULL, k2) == 0 && !STREQ(k1, k2),
	       "rootfs.npm: another lockfile is another rootfs (cache key)");
	json_object *m = npm_trees_manifest(p);
	const char *text = m ? json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN) : NULL;
	tap_contains(text, "\"name\":\"good\",\"prefix\":\"\\/usr\\/lib\\/x\\/good\",\"lockfile_sha256\":",
		     "manifest: the tree, its prefix and its lockfile's SHA-256");
	tap_contains(text, "\"dependencies\":[{\"name\":\"left-pad\",\"version\":\"1.3.0\",\"integrity\":\"sha512-XI5MPz",
		     "manifest: each dependency with the version and integrity the lockfile pins");
	tap_contains(text, "\"build_from_source\":[\"left-pad\"]", "manifest: what is built from source");
	json_object_put(m);
	write_at("npm/good/package-lock.json", "{\"lockfileVersion\":3,\"packages\":{\"\":{}," LEFT_PAD "}}");
	profile_free(p);
}

static void test_artifacts_manifest(void)
{
	write_at("art/hub.json",
		 "{" GOOD_DISK ", \"artifacts\": ["
		 "{\"name\": \"tool.deb\", \"url\": \"https://example.org/tool_1.2_amd64.deb\", \"kind\": \"deb\","
		 " \"sha256\": \"0000000000000000000000000000000000000000000000000000000000000000\", \"version\": \"1.2\","
		 " \"note\": \"sha256 not verified here\"},"
		 "{\"name\": \"plain\", \"url\": \"https://example.org/plain\", \"kind\": \"binary\", \"target\": \"/usr/bin/plain\","
		 " \"sha256\": \"1111111111111111111111111111111111111111111111111111111111111111\"}]}");
	_cleanup_free_ char *path = NULL, *err = NULL;
	if (asprintf(&path, "%s/art/hub.json", tmp) < 0)
		abort();
	struct profile *p = NULL;
	int r = profile_load(path, &p, &err);
	if (!tap_ok(r == 0, "a profile with an artifact's version and note loads")) {
		tap_diag("%d: %s", r, err ? err : "");
		return;
	}
	json_object *m = artifacts_manifest(p);
	tap_is_str(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
		   "[{\"name\":\"tool.deb\",\"url\":\"https://example.org/tool_1.2_amd64.deb\",\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
		   "\"kind\":\"deb\",\"version\":\"1.2\",\"note\":\"sha256 not verified here\",\"baked\":false},"
		   "{\"name\":\"plain\",\"url\":\"https://example.org/plain\",\"sha256\":\"1111111111111111111111111111111111111111111111111111111111111111\","
		   "\"kind\":\"binary\",\"baked\":false}]",
		   "manifest third_party: version and note when given");
	json_object_put(m);
	profile_free(p);
}

/* The packages of P joined with ' ', for comparisons. */
static char *packages_of(const struct profile *p)
{
	return strv_join((char **)p->rootfs.packages, " ");
}

/* "packages_add" and "overlays_add" add to what a profile inherits, along the whole chain. */
static void test_add(void)
{
	write_at("add/base.json", "{\"rootfs\":{\"packages\":[\"a\",\"b\"]}," GOOD_DISK "}");
	write_at("add/mid.json", "{\"extends\":\"base\",\"rootfs\":{\"packages_add\":[\"c\",\"a\"]},"
				 "\"overlays_add\":[\"common\"]}");
	write_at("add/leaf.json", "{\"extends\":\"mid\",\"rootfs\":{\"packages_add\":[\"d\"]}}");
	write_at("add/reset.json", "{\"extends\":\"mid\",\"rootfs\":{\"packages_add\":[\"y\"],\"packages\":[\"x\"]}}");
	write_at("add/bad.json", "{\"extends\":\"mid\",\"rootfs\":{\"packages_add\":[\"ok\",\"Not OK\"]}}");
	write_at("add/type.json", "{\"extends\":\"mid\",\"rootfs\":{\"packages_add\":\"d\"}}");
	struct {
		const char *file, *want, *err;
	} cases[] = {
		{ "mid", "a b c", NULL },
		{ "leaf", "a b c d", NULL },
		{ "reset", "x y", NULL },
		{ "bad", NULL, "add/bad.json: .rootfs.packages[4]: \"Not OK\" is not a Debian package name" },
		{ "type", NULL, "add/type.json: .rootfs.packages_add: expected an array, got a string" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *path = NULL, *err = NULL, *got = NULL;
		if (asprintf(&path, "%s/add/%s.json", tmp, cases[i].file) < 0)
			abort();
		struct profile *p = NULL;
		int r = profile_load(path, &p, &err);
		if (cases[i].want) {
			got = r == 0 ? packages_of(p) : NULL;
			tap_ok(r == 0 && got && STREQ(got, cases[i].want), "%s: packages '%s' (got '%s', %s)", cases[i].file,
			       cases[i].want, got ? got : "", err ? err : "ok");
		} else
			tap_ok(r == -EINVAL && err && strstr(err, cases[i].err), "%s: '%s' (got %s)", cases[i].file,
			       cases[i].err, err ? err : "no error");
		if (r == 0 && STREQ(cases[i].file, "leaf")) {
			json_object *rootfs = json_object_object_get(p->json, "rootfs");
			tap_ok(!json_object_object_get_ex(rootfs, "packages_add", NULL) &&
				       !json_object_object_get_ex(p->json, "overlays_add", NULL),
			       "leaf: no \"_add\" key in the resolved profile");
			tap_ok(p->overlays[0] && STREQ(p->overlays[0], "common") && !p->overlays[1],
			       "leaf: overlays_add of its parent is inherited");
		}
		profile_free(p);
	}
}

static void test_list(void)
{
	_cleanup_strv_ char **names = NULL;
	int r = profile_list(&names);
	tap_is_int(r, 0, "profile_list");
	bool sorted = names && names[0];
	for (size_t i = 1; sorted && names[i]; i++)
		sorted = strcmp(names[i - 1], names[i]) < 0;
	bool has_base = false, has_empty = false;
	for (size_t i = 0; names && names[i]; i++) {
		has_base = has_base || STREQ(names[i], "base-debian");
		has_empty = has_empty || STREQ(names[i], "empty");
	}
	tap_ok(sorted && has_base && has_empty, "profile_list: sorted names without .json");
}

/* Run the real binary with the arguments up to the first NULL; stdout and stderr come back
 * separately. */
static __attribute__((sentinel)) int run_cli(const char *bin, const char *datadir, char **ret_out, char **ret_err, ...)
{
	_cleanup_free_ char *errpath = NULL, *env = NULL;
	if (asprintf(&errpath, "%s/stderr", tmp) < 0 || asprintf(&env, "PMOVES_DATADIR=%s", datadir) < 0)
		abort();
	int fd = open(errpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	char *argv[12] = { (char *)bin };
	va_list ap;
	va_start(ap, ret_err);
	for (size_t i = 1; i < ARRAY_SIZE(argv) - 1 && (argv[i] = va_arg(ap, char *)); i++)
		;
	va_end(ap);
	char *envv[] = { env, NULL };
	struct run_opts o = { .out_fd = fd, .in_fd = -1, .capture = ret_out, .env = envv };
	int r = run_argv(argv, &o);
	close(fd);
	if (read_file(errpath, 1 << 20, ret_err, NULL) < 0)
		*ret_err = strdup("");
	return r;
}

/* BIN ARGS... with PMOVES_DATADIR=DATADIR and the extra environment entry ENV (or NULL). */
static int run_env(const char *bin, const char *env, char **ret_out, char **ret_err, char *const *args)
{
	_cleanup_free_ char *errpath = NULL, *dd = NULL;
	if (asprintf(&errpath, "%s/stderr", tmp) < 0 || asprintf(&dd, "PMOVES_DATADIR=%s", tmp) < 0)
		abort();
	int fd = open(errpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	char *argv[8] = { (char *)bin };
	for (size_t i = 1; i < ARRAY_SIZE(argv) - 1 && args[i - 1]; i++)
		argv[i] = args[i - 1];
	char *envv[] = { dd, (char *)env, NULL };
	int r = run_argv(argv, &(struct run_opts){ .out_fd = fd, .in_fd = -1, .capture = ret_out, .env = envv });
	close(fd);
	if (read_file(errpath, 1 << 20, ret_err, NULL) < 0)
		*ret_err = strdup("");
	if (!*ret_out)
		*ret_out = strdup("");
	return r;
}

/* An aarch64 profile on this (another) architecture: its firstboot section is checked by this
 * machine's pmoves-firstboot, never by running the target's. The target's here is a stand-in
 * this host cannot execute (a machine without binfmt for aarch64: execvp ran it as a shell
 * script, "Syntax error"). And show agrees with validate on an invalid firstboot section. */
static void test_firstboot_cli(const char *bin)
{
	const char *build = getenv("PMOVES_BUILD");
	_cleanup_free_ char *host_fb = NULL, *payload = NULL, *a64 = NULL, *x64 = NULL, *env = NULL, *good = NULL,
			    *bad = NULL, *nohost = NULL, *nohost_bin = NULL, *env_a64 = NULL, *payload_a64 = NULL,
			    *a64_only = NULL, *x64_dir = NULL;
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)) ||
	    asprintf(&host_fb, "%s%s%s/pmoves-firstboot", build && *build == '/' ? "" : cwd,
		     build && *build == '/' ? "" : "/", build && *build ? build : "build") < 0 ||
	    asprintf(&payload, "%s/payload", tmp) < 0 || asprintf(&a64, "%s/payload/aarch64", tmp) < 0 ||
	    asprintf(&x64, "%s/payload/%s/pmoves-firstboot", tmp, arch_host() ? arch_host()->name : "x86_64") < 0 ||
	    asprintf(&x64_dir, "%s/payload/%s", tmp, arch_host() ? arch_host()->name : "x86_64") < 0 ||
	    asprintf(&env, "PMOVES_FIRSTBOOT_DIR=%s", payload) < 0 ||
	    asprintf(&good, "%s/profiles/fb-a64-good.json", tmp) < 0 ||
	    asprintf(&bad, "%s/profiles/fb-a64-bad.json", tmp) < 0 || asprintf(&nohost, "%s/nohost", tmp) < 0 ||
	    asprintf(&nohost_bin, "%s/nohost/pmoves-image", tmp) < 0 ||
	    asprintf(&payload_a64, "%s/payload-a64", tmp) < 0 ||
	    asprintf(&a64_only, "%s/payload-a64/aarch64", tmp) < 0 ||
	    asprintf(&env_a64, "PMOVES_FIRSTBOOT_DIR=%s", payload_a64) < 0)
		abort();
	if (access(bin, X_OK) < 0 || access(host_fb, X_OK) < 0 || !arch_host() || STREQ(arch_host()->name, "aarch64")) {
		tap_skip("firstboot section on another architecture", "needs pmoves-image and pmoves-firstboot built on a host that is not aarch64");
		return;
	}
	static const char stand_in[] = "stand-in for an aarch64 pmoves-firstboot this host cannot execute (\n";
	_cleanup_free_ char *a64_bin = NULL, *a64_bin2 = NULL;
	if (asprintf(&a64_bin, "%s/pmoves-firstboot", a64) < 0 || asprintf(&a64_bin2, "%s/pmoves-firstboot", a64_only) < 0)
		abort();
	if (mkdir_p(a64, 0755) < 0 || write_file_atomic(a64_bin, stand_in, sizeof(stand_in) - 1, 0755) < 0 ||
	    mkdir_p(x64_dir, 0755) < 0 || symlink(host_fb, x64) < 0 || mkdir_p(a64_only, 0755) < 0 ||
	    write_file_atomic(a64_bin2, stand_in, sizeof(stand_in) - 1, 0755) < 0 || mkdir_p(nohost, 0755) < 0)
		abort();
	/* pmoves-image alone in a directory: no target/ beside it. */
	{
		_cleanup_free_ char *data = NULL;
		size_t len = 0;
		if (read_file(bin, 256u << 20, &data, &len) < 0 || write_file_atomic(nohost_bin, data, len, 0755) < 0)
			abort();
	}
	write_at("profiles/fb-a64-good.json",
		 "{\"arch\":\"aarch64\",\"firstboot\":{\"tailnet\":{\"login_server\":\"https://hs.example.org\"}}," GOOD_DISK "}");
	write_at("profiles/fb-a64-bad.json",
		 "{\"arch\":\"aarch64\",\"firstboot\":{\"tailnet\":{\"login_server\":\"https://hs.example.org\",\"bogus\":1}}," GOOD_DISK "}");

	char *out = NULL, *err = NULL;
	int r = run_env(bin, env, &out, &err, (char *[]){ "validate", good, NULL });
	if (!tap_ok(r == 0 && strstr(out, "': ok"), "validate an aarch64 profile with a valid firstboot section: exit 0 (%d)", r))
		tap_diag("stderr: %s", err);
	free(out), free(err);
	r = run_env(bin, env, &out, &err, (char *[]){ "validate", bad, NULL });
	if (!tap_ok(r == 2 && strstr(err, "fb-a64-bad.json: .firstboot.tailnet.bogus") && !strstr(err, "Syntax error"),
		    "validate an aarch64 profile with an invalid firstboot section: exit 2, the key named (%d)", r))
		tap_diag("stderr: %s", err);
	free(out), free(err);

	/* show agrees with validate. */
	r = run_env(bin, env, &out, &err, (char *[]){ "show", bad, NULL });
	if (!tap_ok(r == 2 && strstr(err, "fb-a64-bad.json: .firstboot.tailnet.bogus") && !*out,
		    "show of a profile with an invalid firstboot section: exit 2, the message, nothing printed (%d)", r))
		tap_diag("stdout: %s\nstderr: %s", out, err);
	free(out), free(err);
	r = run_env(bin, env, &out, &err, (char *[]){ "show", good, NULL });
	tap_ok(r == 0 && strstr(out, "\"login_server\""), "show of the valid one: exit 0, printed (%d)", r);
	free(out), free(err);

	/* No pmoves-firstboot for this machine: a clear error, not a missing profile. */
	r = run_env(nohost_bin, env_a64, &out, &err, (char *[]){ "validate", good, NULL });
	if (!tap_ok(r == 3 && strstr(err, "no pmoves-firstboot built for this machine") && !strstr(err, "Syntax error"),
		    "validate without a host build of pmoves-firstboot: exit 3 (missing), said so (%d)", r))
		tap_diag("stderr: %s", err);
	free(out), free(err);
}

/* S has a byte a terminal may act on: C0 other than newline, DEL, C1 (as UTF-8 or a lone byte). */
static bool has_raw_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\n') || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) ||
		    *p == 0x9b)
			return true;
	return false;
}

/* Text from profile files reaches the terminal escaped: list, show, and validate's messages. */
static void test_escaping(const char *bin)
{
	_cleanup_free_ char *escdir = NULL, *evil = NULL, *evil_name = NULL;
	if (asprintf(&escdir, "%s/esc", tmp) < 0 || asprintf(&evil, "%s/esc/profiles/evil.json", tmp) < 0 ||
	    asprintf(&evil_name, "%s/esc/profiles/x\x1b[2Jy.json", tmp) < 0 || mkdir_p(escdir, 0755) < 0)
		abort();
	if (access(bin, X_OK) < 0) {
		tap_skip("escaping", "binary not built");
		return;
	}
	/* C0 controls and DEL are refused in a description; a C1 control (U+009B, CSI) is not. */
	write_at("esc/profiles/evil.json", "{\"description\":\"clear\\u009b2Jscreen\"," GOOD_DISK "}");
	write_at("esc/profiles/badsize.json",
		 "{\"disk\":{\"size\":\"4\\u009b]0;owned\\u0007G\",\"partitions\":[" ESP "," ROOT "]}}");
	/* A file name with an escape sequence. */
	if (write_file_atomic(evil_name, "{}", 2, 0644) < 0)
		abort();
	char *out = NULL, *err = NULL;
	int r = run_cli(bin, escdir, &out, &err, "list", NULL);
	if (!tap_ok(out && !has_raw_control(out) && strstr(out, "\nevil       clear\\xc2\\x9b2Jscreen\n") &&
			    strstr(out, "\nx\\x1b[2Jy  (invalid: x\\x1b[2Jy: "),
		    "list: names, descriptions and messages escaped (exit %d)", r))
		tap_diag("stdout: %s", out ? out : "(null)");
	tap_ok(err && !has_raw_control(err), "list: nothing raw on stderr");
	free(out), free(err);
	r = run_cli(bin, escdir, &out, &err, "list", "--json", NULL);
	json_object *j = out ? json_tokener_parse(out) : NULL;
	tap_ok(out && !has_raw_control(out) && j, "list --json: valid JSON, no raw control character (exit %d)", r);
	json_object_put(j);
	free(out), free(err);
	r = run_cli(bin, escdir, &out, &err, "show", evil, NULL);
	j = out ? json_tokener_parse(out) : NULL;
	tap_ok(r == 0 && out && !has_raw_control(out) && j &&
		       STREQ(json_object_get_string(json_object_object_get(j, "description")),
			     "clear\xc2\x9b" "2Jscreen"),
	       "show: the same JSON, no raw control character (exit %d)", r);
	json_object_put(j);
	free(out), free(err);
	r = run_cli(bin, escdir, &out, &err, "validate", "badsize", NULL);
	if (!tap_ok(r == 2 && err && !has_raw_control(err) && strstr(err, "\"4\\xc2\\x9b]0;owned\\u0007G\" is not a size"),
		    "validate: the value quoted in the message, escaped (exit %d)", r))
		tap_diag("stderr: %s", err ? err : "(null)");
	free(out), free(err);
}

static void test_cli(void)
{
	const char *build = getenv("PMOVES_BUILD");
	_cleanup_free_ char *bin = NULL, *datadir = NULL, *gooddir = NULL, *badfile = NULL;
	if (asprintf(&bin, "%s/pmoves-image", build && *build ? build : "build") < 0 ||
	    asprintf(&datadir, "%s", tmp) < 0 || asprintf(&gooddir, "%s/good", tmp) < 0 ||
	    asprintf(&badfile, "%s/profiles/size-12q.json", tmp) < 0)
		abort();
	if (access(bin, X_OK) < 0) {
		for (int i = 0; i < 19; i++)
			tap_skip("pmoves-image command line", "binary not built");
		return;
	}
	_cleanup_free_ char *basebuf = NULL;
	if (read_file("profiles/base-debian.json", 1 << 20, &basebuf, NULL) == 0)
		write_at("good/profiles/base-debian.json", basebuf);
	_cleanup_free_ char *good_common = NULL;
	if (asprintf(&good_common, "%s/good/overlays/common", tmp) < 0 || mkdir_p(good_common, 0755) < 0)
		abort();
	write_at("good/profiles/small.json", "{\"description\":\"a small one\"," GOOD_DISK "}");

	char *out = NULL, *err = NULL;
	int r = run_cli(bin, datadir, &out, &err, "validate", "base-debian", NULL);
	tap_is_int(r, 0, "validate base-debian: exit 0");
	tap_is_str(out, "'base-debian': ok\n", "validate base-debian: says ok");
	free(out), free(err);

	r = run_cli(bin, datadir, &out, &err, "validate", "base-debian", badfile, NULL);
	tap_is_int(r, 2, "validate good bad: exit 2");
	tap_is_str(out, "'base-debian': ok\n", "validate good bad: ok for the good one");
	tap_contains(err, "size-12q.json: .disk.partitions[1].size: \"12Q\" is not a size",
		     "validate good bad: the message on stderr");
	free(out), free(err);

	r = run_cli(bin, datadir, &out, &err, "validate", "no-such-profile", NULL);
	tap_is_int(r, 3, "validate of a missing profile: exit 3");
	free(out), free(err);

	r = run_cli(bin, datadir, &out, &err, "validate", NULL);
	tap_is_int(r, 2, "validate without arguments: exit 2");
	free(out), free(err);

	r = run_cli(bin, datadir, &out, &err, "validate", "--help", NULL);
	tap_ok(r == 0 && out && strstr(out, "usage: pmoves-image validate"), "validate --help");
	free(out), free(err);

	r = run_cli(bin, datadir, &out, &err, "show", "base-debian", NULL);
	tap_is_int(r, 0, "show base-debian: exit 0");
	json_object *j = out ? json_tokener_parse(out) : NULL;
	tap_ok(j && STREQ(json_object_get_string(json_object_object_get(j, "name")), "base-debian") &&
		       STREQ(key_at(j, 0), "name"),
	       "show prints the resolved JSON, name first");
	json_object *rootfs = json_object_object_get(j, "rootfs");
	tap_is_str(json_object_get_string(json_object_object_get(rootfs, "mirror")), "http://deb.debian.org/debian",
		   "show includes the defaults");
	json_object_put(j);
	free(out), free(err);

	r = run_cli(bin, datadir, &out, &err, "show", badfile, NULL);
	tap_ok(r == 2 && err && strstr(err, "is not a size"), "show of an invalid profile: exit 2 and the message");
	free(out), free(err);

	r = run_cli(bin, datadir, &out, &err, "list", NULL);
	tap_is_int(r, 2, "list with invalid profiles: exit 2");
	tap_ok(out && strstr(out, "\nbase-debian ") && strstr(out, "\nsize-12q ") &&
		       strstr(out, "(invalid: ") && strstr(out, "is not a size"),
	       "list shows the valid and the invalid profiles");
	free(out), free(err);

	r = run_cli(bin, gooddir, &out, &err, "list", NULL);
	tap_is_int(r, 0, "list with only valid profiles: exit 0");
	if (!tap_ok(out && strncmp(out, "base-debian  Debian", 19) == 0 && strstr(out, "\nsmall        a small one\n"),
		    "list aligns names and descriptions"))
		tap_diag("got '%s'", out ? out : "(null)");
	free(out), free(err);

	r = run_cli(bin, gooddir, &out, &err, "list", "--json", NULL);
	j = out ? json_tokener_parse(out) : NULL;
	tap_ok(r == 0 && json_object_is_type(j, json_type_array) && json_object_array_length(j) == 2 &&
		       STREQ(json_object_get_string(
				     json_object_object_get(json_object_array_get_idx(j, 1), "description")),
			     "a small one"),
	       "list --json");
	json_object_put(j);
	free(out), free(err);

	r = run_cli(bin, gooddir, &out, &err, "list", "--bogus", NULL);
	tap_is_int(r, 2, "list --bogus: exit 2");
	free(out), free(err);
	r = run_cli(bin, gooddir, &out, &err, "\x1b[2Jx", NULL);
	tap_ok(r == 2 && strstr(err, "'\\x1b[2Jx' is not a command") && !strchr(err, '\x1b'),
	       "an unknown command: exit 2, quoted escaped (%d, %s)", r, err);
	free(out), free(err);

	/* An output directory that cannot be created fails before anything is made, cleanly: it
	 * once freed pointers that were never set, which valgrind sees (exit 99) when it is here. */
	/* (Not under ASan, which sees bad frees itself and refuses to run under valgrind.) */
	struct elf_needs needs;
	bool asan = false;
	if (elf_read_needs(bin, &needs) == 0) {
		for (size_t i = 0; needs.needed[i]; i++)
			asan = asan || strncmp(needs.needed[i], "libasan.so", 10) == 0;
		elf_needs_free(&needs);
	}
	const char *vg = !asan && access("/usr/bin/valgrind", X_OK) == 0 ? "/usr/bin/valgrind" : NULL;
	if (vg)
		r = run_cli(vg, gooddir, &out, &err, "-q", "--error-exitcode=99", bin, "build", "small", "-o",
			    "/proc/pmoves-no-such/images", NULL);
	else
		r = run_cli(bin, gooddir, &out, &err, "build", "small", "-o", "/proc/pmoves-no-such/images", NULL);
	tap_ok(r == 1 && strstr(err, "cannot create '/proc/pmoves-no-such/images'"),
	       "build -o DIR that cannot be created: exit 1, names it%s (exit %d, %s)", vg ? ", valgrind clean" : "",
	       r, err);
	free(out), free(err);
}

/* Strings every format is tried on, by the C validator and by the JSON Schema. */
static const char *const corpus[] = {
	"", "a", "A", "-a", ".a", "_a", "a.b", "a..b", "a b", "a\\tb", "abc\\n", "\\nabc", "a\\\\b", "x/y", "../up",
	"/", "//", "/a", "/a/", "/a//b", "/a/../b", "/a/./b", "/a/.b", "/a/..b", "/a/...", "/a b", "/a\\\\b",
	"/boot/efi", "0", "512", "1000", "4G", "4g", "1KiB", "1k", "2M", "12Q", "-1G", "4 G", "fill", "Fill", "auto", "Auto",
	"auto ", "autofill",
	"host-1", "host-", "-host", "a.b.c", "a.-b", "a.b.", "H0st.Example.ORG", "EFI SYSTEM", "efi~|}",
	"x86_64", "amd64", "aarch64", "gpt", "mbr", "esp", "root", "bogus", "ext4", "vfat", "none", "btrfs",
	"systemd-boot", "grub", "raw", "iso", "mmdebstrap", "tarball", "\\u00fcber", "caf\\u00e9 au lait",
	"quiet console=ttyS0,115200", "a\\u0007b", "a\\u007fb", "a\\u0000b", "ROOT", "Root",
	"abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrstuvwxyz01234567890",
};

/* Profiles with a "firstboot" section: whether pmoves-image validate takes the file (with what
 * it extends) and what the schema says of the file on its own. */
static const struct {
	const char *file, *content;
	bool valid;
	enum schema_says schema;
} fb_cases[] = {
	{ "fb-unknown.json", "{\"firstboot\":{\"tailnet\":{\"login_server\":\"https://hs.example.org\",\"bogus\":1}}," GOOD_DISK "}",
	  false, SCHEMA_REFUSES },
	{ "fb-required.json", "{\"firstboot\":{\"tailnet\":{\"key_file\":\"/etc/pmoves/tailnet.key\"}}," GOOD_DISK "}", false,
	  SCHEMA_REFUSES },
	{ "fb-format.json", "{\"firstboot\":{\"tailnet\":{\"login_server\":\"ftp://hs\"}}," GOOD_DISK "}", false,
	  SCHEMA_REFUSES },
	{ "fb-step.json", "{\"firstboot\":{\"steps\":{\"no-such-step\":false}}," GOOD_DISK "}", false, SCHEMA_REFUSES },
	{ "fb-parent.json", "{\"firstboot\":{\"tailnet\":{\"login_server\":\"https://hs.example.org\"}}," GOOD_DISK "}",
	  true, SCHEMA_ACCEPTS },
	/* Half a tailnet section on its own, whole with its parent's. */
	{ "fb-child.json", "{\"extends\":\"fb-parent\",\"firstboot\":{\"tailnet\":{\"key_file\":\"/etc/pmoves/tailnet.key\"}}}",
	  true, SCHEMA_ACCEPTS },
};

/* pmoves-image schema against the C validator: every file of the bad and good profiles, and
 * the corpus on every format. Runs Debian's python3 with python3-jsonschema (make deps). */
static void test_schema(const char *bin)
{
	if (access("/usr/bin/python3", X_OK) < 0 ||
	    run_argv((char *[]){ "/usr/bin/python3", "-c", "import jsonschema", NULL }, &(struct run_opts){ .in_fd = -1 }) != 0) {
		tap_skip("the JSON Schema against the validator", "python3-jsonschema is not installed (make deps)");
		return;
	}
	_cleanup_free_ char *schema = NULL, *cases = NULL, *corp = NULL, *out = NULL;
	if (asprintf(&schema, "%s/profile.schema.json", tmp) < 0 || asprintf(&cases, "%s/schema-cases", tmp) < 0 ||
	    asprintf(&corp, "%s/schema-corpus", tmp) < 0)
		abort();
	_cleanup_free_ char *text = NULL;
	int r = run_argv((char *[]){ (char *)bin, "schema", NULL }, &(struct run_opts){ .in_fd = -1, .capture = &text });
	if (!tap_ok(r == 0 && text && write_file_atomic(schema, text, strlen(text), 0644) == 0,
		    "pmoves-image schema: exit 0 (%d)", r))
		return;

	_cleanup_fclose_ FILE *f = fopen(cases, "we");
	if (!f)
		abort();
	static const char *const words[] = { [SCHEMA_REFUSES] = "refuse", [SCHEMA_ACCEPTS] = "accept",
					     [SCHEMA_NOT_JSON] = "notjson" };
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++)
		fprintf(f, "%s %s/profiles/%s\n", words[bad_cases[i].schema], tmp, bad_cases[i].file);
	fprintf(f, "refuse %s/profiles/typo-parent.json\nrefuse %s/profiles/badsize-parent.json\n", tmp, tmp);
	fprintf(f, "accept %s/profiles/good-parent.json\naccept %s/profiles/badmargin-parent.json\n", tmp, tmp);
	/* The "firstboot" section: checked by pmoves-firstboot's schema, embedded, in a file that
	 * extends none; a part of a profile may hold half a section. The validator's verdict is
	 * asserted too, so a schema that checks nothing there fails. */
	for (size_t i = 0; i < ARRAY_SIZE(fb_cases); i++) {
		_cleanup_free_ char *rel = NULL;
		if (asprintf(&rel, "profiles/%s", fb_cases[i].file) < 0)
			abort();
		write_at(rel, fb_cases[i].content);
	}
	for (size_t i = 0; i < ARRAY_SIZE(fb_cases); i++) {
		_cleanup_free_ char *path = NULL;
		if (asprintf(&path, "%s/profiles/%s", tmp, fb_cases[i].file) < 0)
			abort();
		int v = run_argv((char *[]){ (char *)bin, "validate", path, NULL }, &(struct run_opts){ .in_fd = -1 });
		tap_ok(fb_cases[i].valid ? v == 0 : v == 2, "pmoves-image validate %s: %s (exit %d)",
		       fb_cases[i].file, fb_cases[i].valid ? "valid" : "invalid", v);
		fprintf(f, "%s %s\n", fb_cases[i].schema == SCHEMA_ACCEPTS ? "accept" : "refuse", path);
	}
	static const char *const good[] = { "profiles/base-debian.json", "profiles/gateway.json",
					    "profiles/headscale-hub.json", "profiles/proxmox-core.json",
					    "tools/bench/cloudinit-debian.json", "tests/fixtures/mesh/mesh-test.json" };
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		fprintf(f, "accept %s\n", good[i]);
	fclose(TAKE_PTR(f));

	f = fopen(corp, "we");
	if (!f)
		abort();
	for (size_t k = 0; profile_format_at(k); k++) {
		const struct format *fmt = profile_format_at(k);
		for (size_t i = 0; i < ARRAY_SIZE(corpus); i++) {
			_cleanup_free_ char *quoted = NULL, *msg = NULL;
			if (asprintf(&quoted, "\"%s\"", corpus[i]) < 0)
				abort();
			json_object *v = json_tokener_parse(quoted);
			if (!v)
				abort();
			/* The validator refuses a NUL in any string before the formats (check_value). */
			const char *sv = json_object_get_string(v);
			int c = strlen(sv) != (size_t)json_object_get_string_len(v) ? -EINVAL : format_check(fmt, sv, &msg);
			fprintf(f, "%s\t%s\t%s\n", fmt->name, quoted, c == 0 ? "accept" : "refuse");
			json_object_put(v);
		}
	}
	fclose(TAKE_PTR(f));

	r = run_argv((char *[]){ "/usr/bin/python3", "tests/schema-check.py", schema, cases, corp, NULL },
		     &(struct run_opts){ .in_fd = -1, .capture = &out });
	if (!tap_ok(r == 0 && out, "tests/schema-check.py ran (exit %d)", r))
		return;
	size_t lines = 0;
	for (char *line = out, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		lines++;
		if (strncmp(line, "ok ", 3) == 0)
			tap_ok(true, "%s", line + 3);
		else
			tap_ok(false, "%s", strncmp(line, "not ok ", 7) == 0 ? line + 7 : line);
	}
	tap_ok(lines > ARRAY_SIZE(bad_cases) + 100, "the checker judged every case (%zu lines)", lines);
}

/* One build of a cache entry at a time: a second locker waits until the first lets go; the
 * lock file goes with the lock. */
static void test_cache_lock(void)
{
	struct cache_lock l = { .fd = -1 }, planted = { .fd = -1 };
	int p[2];
	tap_ok(rootfs_cache_lock(tmp, "k", &l) == 0 && l.fd >= 0, "rootfs cache: the entry's lock is taken");
	_cleanup_free_ char *path = NULL, *link = NULL;
	struct stat st;
	if (asprintf(&path, "%s/k.lock", tmp) < 0 || asprintf(&link, "%s/planted.lock", tmp) < 0 || pipe(p) < 0)
		abort();
	tap_ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "... in KEY.lock, mode 0600");
	pid_t pid = fork();
	if (pid == 0) {
		struct cache_lock cl = { .fd = -1 };
		close(p[0]);
		close(l.fd); /* the parent's lock, not the child's: flock is per open file */
		_exit(rootfs_cache_lock(tmp, "k", &cl) == 0 && write(p[1], "x", 1) == 1 ? 0 : 1);
	}
	close(p[1]);
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	tap_ok(pid > 0 && poll(&pfd, 1, 300) == 0, "a second build of the same entry waits while the first holds it");
	rootfs_cache_unlock(&l);
	char ch = 0;
	int status = -1;
	tap_ok(poll(&pfd, 1, 30000) == 1 && read(p[0], &ch, 1) == 1 && ch == 'x' && waitpid(pid, &status, 0) == pid &&
		       WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "... and goes on when the first lets go (on a lock file of its own: the first removed its)");
	close(p[0]);
	unlink(path); /* the child's, left as a killed build leaves one */
	tap_ok(rootfs_cache_lock(tmp, "k", &l) == 0 && (rootfs_cache_unlock(&l), l.fd == -1) && lstat(path, &st) < 0 &&
		       errno == ENOENT,
	       "letting go removes the lock file: the cache keeps none");
	tap_ok(symlink(path, link) == 0 && rootfs_cache_lock(tmp, "planted", &planted) == -ELOOP && planted.fd == -1,
	       "a symlink planted as the lock is not followed (ELOOP)");
	unlink(link);
}

int main(void)
{
	if (!mkdtemp(tmp)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	setenv("PMOVES_DATADIR", tmp, 1);
	_cleanup_free_ char *ov = NULL;
	if (asprintf(&ov, "%s/overlays/common", tmp) < 0 || mkdir_p(ov, 0755) < 0)
		abort();

	test_bad();
	test_guest_good();
	test_bad_other();
	test_base_debian();
	test_child();
	test_auto();
	test_add();
	test_artifacts_manifest();
	test_npm();
	test_cache_lock();
	test_list();
	test_cli();
	{
		const char *build = getenv("PMOVES_BUILD");
		_cleanup_free_ char *bin = NULL;
		if (asprintf(&bin, "%s/pmoves-image", build && *build ? build : "build") < 0)
			abort();
		test_schema(bin);
		test_firstboot_cli(bin);
		test_escaping(bin);
	}

	int r = tap_done();
	if (r == 0 && !getenv("PMOVES_TEST_KEEP"))
		rm_rf(tmp);
	else
		tap_diag("fixtures left in %s", tmp);
	return r;
}
