# pmoves-image and pmoves-firstboot. `make help` lists the targets.
PMOVES_VERSION := 0.1.0
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/pmoves-image
LIBEXECDIR ?= $(PREFIX)/lib/pmoves-image

CC ?= cc
PKGS := libarchive json-c libcurl libcrypto libssl blkid ext2fs com_err libzstd liblzma liblz4
# Libraries pmoves-firstboot loads when it needs them (dlopen: libefivar reads its paths as it
# is loaded, see step-efiboot.c): their headers only, no link.
DL_PKGS := efivar efiboot
WARN := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -MMD -MP
# A goto over an initialisation would free garbage through a _cleanup_ variable: gcc warns with
# -Wjump-misses-init; clang refuses such a jump by itself and does not know the option.
WARN += $(shell $(CC) -Werror -Wjump-misses-init -E -x c /dev/null >/dev/null 2>&1 && echo -Wjump-misses-init)
# DWARF 4: bookworm's valgrind (3.19) cannot read the DWARF 5 clang 14 writes ("unhandled
# dwarf2 abbrev form code 0x25"), and the tests run the builder under valgrind.
CFLAGS ?= -O2 -g -gdwarf-4
CFLAGS += $(WARN)
CPPFLAGS += -D_GNU_SOURCE -Ilib -Ibuilder -DPMOVES_VERSION='"$(PMOVES_VERSION)"' \
	-DPMOVES_DATADIR='"$(DATADIR)"' -DPMOVES_LIBEXECDIR='"$(LIBEXECDIR)"' \
	$(shell pkg-config --cflags $(PKGS) $(DL_PKGS) 2>/dev/null)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread

# FUZZ=1: the objects for libFuzzer harnesses (make fuzz sets it, with CC=clang).
ifeq ($(FUZZ),1)
BUILD ?= build-fuzz
CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif

ifeq ($(SANITIZE),1)
BUILD ?= build-san
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
else
BUILD ?= build
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRC := $(sort $(wildcard lib/*.c))
BUILDER_SRC := $(sort $(wildcard builder/*.c))
FIRSTBOOT_SRC := $(sort $(wildcard firstboot/*.c))
# pmoves-sandbox: the launcher; sandbox/init.c is its guest's PID 1, linked statically apart.
SANDBOX_SRC := $(sort $(filter-out sandbox/init.c,$(wildcard sandbox/*.c)))
TEST_SRC := $(sort $(wildcard tests/test-*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
BUILDER_OBJ := $(BUILDER_SRC:%.c=$(BUILD)/%.o)
BUILDER_LIB_OBJ := $(filter-out $(BUILD)/builder/main.o,$(BUILDER_OBJ))
FIRSTBOOT_OBJ := $(FIRSTBOOT_SRC:%.c=$(BUILD)/%.o)
FIRSTBOOT_LIB_OBJ := $(filter-out $(BUILD)/firstboot/main.o,$(FIRSTBOOT_OBJ))
SANDBOX_OBJ := $(SANDBOX_SRC:%.c=$(BUILD)/%.o)
SANDBOX_LIB_OBJ := $(filter-out $(BUILD)/sandbox/main.o,$(SANDBOX_OBJ))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%.t)
# tests/test-fb-*.c test pmoves-firstboot, tests/test-sbx-*.c pmoves-sandbox; the others pmoves-image.
FB_TEST_BIN := $(filter $(BUILD)/tests/test-fb-%,$(TEST_BIN))
SBX_TEST_BIN := $(filter $(BUILD)/tests/test-sbx-%,$(TEST_BIN))
# Fuzz harnesses tests/fuzz/NAME.c (docs/fuzzing.md): fb-* exercise pmoves-firstboot, the
# others pmoves-image. `make check` replays each one's corpus tests/fuzz/NAME/ with our own
# driver (tests/fuzz/replay.c) as $(BUILD)/tests/fuzz-replay-NAME.t; `make fuzz` builds them
# with libFuzzer as $(FUZZ_BUILD)/fuzz/NAME and runs each for FUZZ_SECONDS.
FUZZ_NAMES := $(sort $(basename $(notdir $(filter-out tests/fuzz/replay.c,$(wildcard tests/fuzz/*.c)))))
FUZZ_REPLAY_BIN := $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz-replay-%.t)
FUZZ_FB_REPLAY_BIN := $(filter $(BUILD)/tests/fuzz-replay-fb-%,$(FUZZ_REPLAY_BIN))
FUZZ_BIN := $(FUZZ_NAMES:%=$(BUILD)/fuzz/%)
FUZZ_CC ?= clang
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 180
FUZZ_TARGETS ?= $(FUZZ_NAMES)
PROGRAMS := $(BUILD)/pmoves-image $(if $(wildcard firstboot/main.c),$(BUILD)/pmoves-firstboot) \
	$(BUILD)/pmoves-sandbox

# pmoves-firstboot as it goes into images: $(BUILD)/target/ARCH/pmoves-firstboot and its units,
# for every ARCH in TARGET_ARCHES, never with sanitizers, linked only against what it needs
# (FB_PKGS; the builder installs those libraries in the image and checks their glibc). The
# host's architecture is built with $(CC) and pkg-config; another with Debian's cross compiler
# ARCH-linux-gnu-gcc and that architecture's multiarch -dev packages (make deps installs them
# for aarch64), or is skipped with a note when they are not installed.
HOST_ARCH := $(shell uname -m)
TARGET_ARCHES := x86_64 aarch64
FB_PKGS := json-c libcurl libcrypto blkid libzstd liblzma
TARGET_CPPFLAGS := -D_GNU_SOURCE -Ilib -Ifirstboot -DPMOVES_VERSION='"$(PMOVES_VERSION)"'
TARGET_CFLAGS := -O2 -g -gdwarf-4 $(WARN)
TARGET_FB :=
TARGET_OBJ :=
TARGET_SKIPPED :=

all: # the default goal; its prerequisites follow the target rules

# fb_target ARCH: sets T_CC_ARCH and T_PC_ARCH; when they can build, the rules for ARCH.
define fb_target
T_CC_$(1) := $(if $(filter $(1),$(HOST_ARCH)),$(CC),$(1)-linux-gnu-gcc)
T_PC_$(1) := $(if $(filter $(1),$(HOST_ARCH)),pkg-config,PKG_CONFIG_LIBDIR=/usr/lib/$(1)-linux-gnu/pkgconfig:/usr/share/pkgconfig pkg-config)
T_WHY_$(1) := $$(if $$(shell command -v $$(firstword $$(T_CC_$(1))) 2>/dev/null),$$(if $$(shell $$(T_PC_$(1)) --exists $(FB_PKGS) $(DL_PKGS) && echo y),,$(1) libraries for '$(FB_PKGS) $(DL_PKGS)' are not installed),'$$(firstword $$(T_CC_$(1)))' is not installed)
ifeq ($$(T_WHY_$(1)),)
T_PKG_CFLAGS_$(1) := $$(shell $$(T_PC_$(1)) --cflags $(FB_PKGS) $(DL_PKGS))
T_PKG_LIBS_$(1) := $$(shell $$(T_PC_$(1)) --libs $(FB_PKGS))
T_OBJ_$(1) := $$(LIB_SRC:%.c=$(BUILD)/target/$(1)/%.o) $$(FIRSTBOOT_SRC:%.c=$(BUILD)/target/$(1)/%.o)
TARGET_OBJ += $$(T_OBJ_$(1))
TARGET_FB += $(if $(wildcard firstboot/main.c),$(BUILD)/target/$(1)/pmoves-firstboot \
	$(BUILD)/target/$(1)/pmoves-firstboot.service $(BUILD)/target/$(1)/pmoves-firstboot.timer) \
	$(BUILD)/target/$(1)/pmoves-sandbox-init $(BUILD)/target/$(1)/pmoves-sandbox

$(BUILD)/target/$(1)/%.o: %.c
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  CC      $$< ($(1))")
	$$(Q)$$(T_CC_$(1)) $$(TARGET_CPPFLAGS) $$(T_PKG_CFLAGS_$(1)) $$(TARGET_CFLAGS) -c -o $$@ $$<

$(BUILD)/target/$(1)/pmoves-firstboot: $$(T_OBJ_$(1))
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(T_CC_$(1)) -o $$@ $$^ $$(T_PKG_LIBS_$(1)) -pthread

$(BUILD)/target/$(1)/pmoves-firstboot.%: firstboot/pmoves-firstboot.%
	$$(Q)cp $$< $$@

# The sandbox launcher as it goes into images (builder/sandbox-bake.c): the library through an
# archive, so that it links only what the launcher uses (json-c and libcrypto).
T_SBX_OBJ_$(1) := $$(SANDBOX_SRC:%.c=$(BUILD)/target/$(1)/%.o)
TARGET_OBJ += $$(T_SBX_OBJ_$(1))
$(BUILD)/target/$(1)/libpmoves.a: $$(LIB_SRC:%.c=$(BUILD)/target/$(1)/%.o)
	$$(Q)rm -f $$@ && $(1)-linux-gnu-ar rcs $$@ $$^

$(BUILD)/target/$(1)/pmoves-sandbox: $$(T_SBX_OBJ_$(1)) $(BUILD)/target/$(1)/libpmoves.a
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(T_CC_$(1)) -o $$@ $$^ $$(shell $$(T_PC_$(1)) --libs json-c libcrypto) -pthread

# A sandbox guest's PID 1 (sandbox/init.c, the output "microvm" puts it in the initramfs):
# libc only, static, never with sanitizers.
$(BUILD)/target/$(1)/pmoves-sandbox-init: sandbox/init.c sandbox/sbx-io.h
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  CC      $$@ (static)")
	$$(Q)$$(T_CC_$(1)) $$(TARGET_CFLAGS) -MF $$@.d -static -o $$@ $$<
else
TARGET_SKIPPED += $(1)
endif
endef
$(foreach a,$(TARGET_ARCHES),$(eval $(call fb_target,$(a))))

all: $(PROGRAMS) $(TARGET_FB) pmoves-image target-notes

# One line per architecture not built, on every make that builds the targets.
target-notes:
	@$(foreach a,$(TARGET_SKIPPED),echo "note: pmoves-firstboot for $(a) not built: $(T_WHY_$(a)) (make deps)";)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# The install directories are compiled in: rebuild what uses them when they change.
$(BUILD)/datadir.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo '$(DATADIR) $(LIBEXECDIR)' | cmp -s - $@ || echo '$(DATADIR) $(LIBEXECDIR)' > $@
$(BUILD)/builder/profile.o $(BUILD)/builder/firstboot-install.o: $(BUILD)/datadir.stamp

$(BUILD)/libpmoves.a: $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libbuilder.a: $(BUILDER_LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/pmoves-image: $(BUILD)/builder/main.o $(BUILD)/libbuilder.a $(BUILD)/libpmoves.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libfirstboot.a: $(FIRSTBOOT_LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/pmoves-firstboot: $(BUILD)/firstboot/main.o $(BUILD)/libfirstboot.a $(BUILD)/libpmoves.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/firstboot/%.o: CPPFLAGS += -Ifirstboot

$(BUILD)/pmoves-sandbox: $(SANDBOX_OBJ) $(BUILD)/libpmoves.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/sandbox/%.o: CPPFLAGS += -Isandbox


# The programs at the top of the tree, for people and tests.
pmoves-image: $(BUILD)/pmoves-image
	$(Q)ln -sf $< $@

$(BUILD)/tests/%.t: $(BUILD)/tests/%.o $(BUILD)/libbuilder.a $(BUILD)/libpmoves.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(FB_TEST_BIN): $(BUILD)/tests/%.t: $(BUILD)/tests/%.o $(BUILD)/libfirstboot.a $(BUILD)/libpmoves.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(SBX_TEST_BIN): $(BUILD)/tests/%.t: $(BUILD)/tests/%.o $(SANDBOX_LIB_OBJ) $(BUILD)/libpmoves.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%.o: CPPFLAGS += -Itests
$(BUILD)/tests/test-sbx-%.o: CPPFLAGS += -Isandbox
$(BUILD)/tests/test-fb-%.o: CPPFLAGS += -Ifirstboot
$(BUILD)/tests/fuzz/fb-%.o: CPPFLAGS += -Ifirstboot

$(filter-out $(FUZZ_FB_REPLAY_BIN),$(FUZZ_REPLAY_BIN)): $(BUILD)/tests/fuzz-replay-%.t: \
		$(BUILD)/tests/fuzz/replay.o $(BUILD)/tests/fuzz/%.o $(BUILD)/libbuilder.a $(BUILD)/libpmoves.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(FUZZ_FB_REPLAY_BIN): $(BUILD)/tests/fuzz-replay-%.t: \
		$(BUILD)/tests/fuzz/replay.o $(BUILD)/tests/fuzz/%.o $(BUILD)/libfirstboot.a $(BUILD)/libpmoves.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests: $(TEST_BIN) $(FUZZ_REPLAY_BIN)

# libFuzzer programs (FUZZ=1 CC=clang): the harness, libFuzzer's main and the sanitizers.
$(filter-out $(BUILD)/fuzz/fb-%,$(FUZZ_BIN)): $(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/libbuilder.a $(BUILD)/libpmoves.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -fsanitize=fuzzer,address,undefined $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(filter $(BUILD)/fuzz/fb-%,$(FUZZ_BIN)): $(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/libfirstboot.a $(BUILD)/libpmoves.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -fsanitize=fuzzer,address,undefined $(LDFLAGS) -o $@ $^ $(LDLIBS)

fuzz-programs: $(FUZZ_BIN)

# clang and its fuzzer runtime (make deps installs both), then each harness in turn for
# FUZZ_SECONDS on one core (tools/fuzz.sh). FUZZ_TARGETS="profile inspect" runs some only.
fuzz: deps
	$(Q)command -v $(FUZZ_CC) >/dev/null 2>&1 || \
		{ echo "make fuzz: '$(FUZZ_CC)' is not installed (make deps installs clang; or set FUZZ_CC)" >&2; exit 3; }
	$(Q)mkdir -p $(FUZZ_BUILD)
	$(Q)printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return d && n; }\n' | \
		$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -x c - -o $(FUZZ_BUILD)/probe 2>$(FUZZ_BUILD)/probe.log || \
		{ echo "make fuzz: '$(FUZZ_CC)' cannot link a libFuzzer program: is it clang with its fuzzer runtime, libclang_rt.fuzzer? (make deps installs clang and libclang-rt-14-dev; the compiler said: $(FUZZ_BUILD)/probe.log)" >&2; exit 3; }
	$(Q)$(MAKE) --no-print-directory FUZZ=1 CC=$(FUZZ_CC) BUILD=$(FUZZ_BUILD) fuzz-programs
	@# Dictionaries from the two schemas (the validators' own tables): the keys and values they know.
	$(Q)$(MAKE) --no-print-directory $(BUILD)/pmoves-image $(BUILD)/pmoves-firstboot
	$(Q)mkdir -p $(FUZZ_BUILD)/fuzz-dict
	$(Q)$(BUILD)/pmoves-image schema | python3 tools/fuzz-dict.py >$(FUZZ_BUILD)/fuzz-dict/profile.dict
	$(Q)$(BUILD)/pmoves-firstboot schema | python3 tools/fuzz-dict.py >$(FUZZ_BUILD)/fuzz-dict/fb-config.dict
	$(Q)sh tools/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Set-up on a fresh Debian 12 machine: installs what is missing, does nothing otherwise.
deps:
	$(Q)sh tools/deps.sh

# End-to-end tests that `make check` leaves to `make check-all`, to keep a cold `make check`
# within its hour: slower variants of what other tests boot (README, "Tests"); check-all also
# sets PMOVES_E2E_SLOW=1, which runs the slower variants inside tests (lib.sh's slow). mesh-halow.t:
# the mesh step over the HaLow path (a vendor driver package, stand-in); mesh.t and
# mesh-wifi.t boot the same step.
E2E_ALL := $(sort $(wildcard tests/e2e/*.t))
E2E_SLOW := tests/e2e/mesh-halow.t tests/e2e/pxe-lan.t
E2E := $(filter-out $(E2E_SLOW),$(E2E_ALL))

# Test files run CHECK_JOBS at a time: most of an end-to-end test is one QEMU guest under TCG,
# which keeps one core busy, and a machine has two or more. Tests that build the same profile
# share one build (the rootfs cache's lock). CHECK_JOBS=1: one at a time. The end-to-end tests
# first: they are the long ones.
CHECK_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

# deps first, then a fresh make: pkg-config is read when the Makefile is, so the libraries
# that deps installs are only seen by a new make.
check: deps
	$(Q)$(MAKE) --no-print-directory all tests
	$(Q)PMOVES_BUILD=$(BUILD) prove -f --timer -j$(CHECK_JOBS) $(E2E) $(TEST_BIN) $(FUZZ_REPLAY_BIN)

# Everything make check runs, and the slower variants.
check-all: deps
	$(Q)$(MAKE) --no-print-directory all tests
	$(Q)PMOVES_BUILD=$(BUILD) PMOVES_E2E_SLOW=1 prove -f --timer -j$(CHECK_JOBS) $(E2E_ALL) $(TEST_BIN) $(FUZZ_REPLAY_BIN)

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh tools/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh tools/bench.sh
	$(Q)sh tools/bench-firstboot.sh
	$(Q)sh tools/bench-flash.sh
	$(Q)sh tools/bench-arm64.sh
	$(Q)sh tools/bench-sandbox.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)
	install -m 0755 $(BUILD)/pmoves-image $(DESTDIR)$(BINDIR)/pmoves-image
	$(if $(wildcard firstboot/main.c),install -m 0755 $(BUILD)/pmoves-firstboot $(DESTDIR)$(BINDIR)/pmoves-firstboot)
	install -m 0755 $(BUILD)/pmoves-sandbox $(DESTDIR)$(BINDIR)/pmoves-sandbox
	$(foreach a,$(TARGET_ARCHES),$(if $(filter $(BUILD)/target/$(a)/%,$(TARGET_FB)),install -d $(DESTDIR)$(LIBEXECDIR)/$(a) && cp $(filter $(BUILD)/target/$(a)/%,$(TARGET_FB)) $(DESTDIR)$(LIBEXECDIR)/$(a)/ &&)) true
	cp -R profiles overlays npm pinokio $(DESTDIR)$(DATADIR)/
	install -d $(DESTDIR)$(DATADIR)/schema
	$(BUILD)/pmoves-image schema >$(DESTDIR)$(DATADIR)/schema/profile.schema.json
	$(if $(wildcard firstboot/main.c),$(BUILD)/pmoves-firstboot schema >$(DESTDIR)$(DATADIR)/schema/firstboot.schema.json)

clean:
	rm -rf build build-san $(FUZZ_BUILD) pmoves-image

help:
	@echo "targets: all deps check check-all demo bench fuzz install clean   options: SANITIZE=1 V=1 PREFIX= DESTDIR= CHECK_JOBS="
	@echo "fuzz options: FUZZ_SECONDS=$(FUZZ_SECONDS) (each harness) FUZZ_TARGETS=\"$(FUZZ_NAMES)\" FUZZ_ARGS= FUZZ_CC=$(FUZZ_CC)"

.PHONY: all target-notes tests deps check check-all demo bench fuzz fuzz-programs install clean help pmoves-image FORCE
FORCE:
.DELETE_ON_ERROR:
.SECONDARY:
-include $(LIB_OBJ:.o=.d) $(BUILDER_OBJ:.o=.d) $(FIRSTBOOT_OBJ:.o=.d) $(SANDBOX_OBJ:.o=.d) $(TEST_BIN:.t=.d) $(TARGET_OBJ:.o=.d) \
	$(FUZZ_NAMES:%=$(BUILD)/tests/fuzz/%.d) $(BUILD)/tests/fuzz/replay.d
