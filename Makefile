# pmoves-image and pmoves-firstboot. `make help` lists the targets.
PMOVES_VERSION := 0.1.0
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/pmoves-image
LIBEXECDIR ?= $(PREFIX)/lib/pmoves-image

CC ?= cc
PKGS := libarchive json-c libcurl blkid ext2fs com_err
WARN := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -MMD -MP
CFLAGS ?= -O2 -g
CFLAGS += $(WARN)
CPPFLAGS += -D_GNU_SOURCE -Ilib -Ibuilder -DPMOVES_VERSION='"$(PMOVES_VERSION)"' \
	-DPMOVES_DATADIR='"$(DATADIR)"' -DPMOVES_LIBEXECDIR='"$(LIBEXECDIR)"' \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread

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
TEST_SRC := $(sort $(wildcard tests/test-*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
BUILDER_OBJ := $(BUILDER_SRC:%.c=$(BUILD)/%.o)
BUILDER_LIB_OBJ := $(filter-out $(BUILD)/builder/main.o,$(BUILDER_OBJ))
FIRSTBOOT_OBJ := $(FIRSTBOOT_SRC:%.c=$(BUILD)/%.o)
FIRSTBOOT_LIB_OBJ := $(filter-out $(BUILD)/firstboot/main.o,$(FIRSTBOOT_OBJ))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%.t)
# tests/test-fb-*.c test pmoves-firstboot; the others pmoves-image.
FB_TEST_BIN := $(filter $(BUILD)/tests/test-fb-%,$(TEST_BIN))
PROGRAMS := $(BUILD)/pmoves-image $(if $(wildcard firstboot/main.c),$(BUILD)/pmoves-firstboot)

# pmoves-firstboot as it goes into images: built for the target, never with sanitizers.
# (Same architecture as this machine for now; aarch64 images need a cross build.)
HOST_ARCH := $(shell uname -m)
TARGET_DIR := $(BUILD)/target/$(HOST_ARCH)
TARGET_FB := $(if $(wildcard firstboot/main.c),$(TARGET_DIR)/pmoves-firstboot \
	$(TARGET_DIR)/pmoves-firstboot.service $(TARGET_DIR)/pmoves-firstboot.timer)
TARGET_OBJ := $(LIB_SRC:%.c=$(TARGET_DIR)/%.o) $(FIRSTBOOT_SRC:%.c=$(TARGET_DIR)/%.o)

all: $(PROGRAMS) $(TARGET_FB) pmoves-image

$(TARGET_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $< (target)")
	$(Q)$(CC) $(CPPFLAGS) -Ifirstboot -O2 -g $(WARN) -c -o $@ $<

$(TARGET_DIR)/pmoves-firstboot: $(TARGET_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $^ $(LDLIBS)

$(TARGET_DIR)/pmoves-firstboot.%: firstboot/pmoves-firstboot.%
	$(Q)cp $< $@

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

# The programs at the top of the tree, for people and tests.
pmoves-image: $(BUILD)/pmoves-image
	$(Q)ln -sf $< $@

$(BUILD)/tests/%.t: $(BUILD)/tests/%.o $(BUILD)/libbuilder.a $(BUILD)/libpmoves.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(FB_TEST_BIN): $(BUILD)/tests/%.t: $(BUILD)/tests/%.o $(BUILD)/libfirstboot.a $(BUILD)/libpmoves.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%.o: CPPFLAGS += -Itests
$(BUILD)/tests/test-fb-%.o: CPPFLAGS += -Ifirstboot

tests: $(TEST_BIN)

# Set-up on a fresh Debian 12 machine: installs what is missing, does nothing otherwise.
deps:
	$(Q)sh tools/deps.sh

# deps first, then a fresh make: pkg-config is read when the Makefile is, so the libraries
# that deps installs are only seen by a new make.
check: deps
	$(Q)$(MAKE) --no-print-directory all tests
	$(Q)PMOVES_BUILD=$(BUILD) prove -f --timer $(TEST_BIN) $(sort $(wildcard tests/e2e/*.t))

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh tools/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh tools/bench.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)
	install -m 0755 $(BUILD)/pmoves-image $(DESTDIR)$(BINDIR)/pmoves-image
	$(if $(wildcard firstboot/main.c),install -m 0755 $(BUILD)/pmoves-firstboot $(DESTDIR)$(BINDIR)/pmoves-firstboot)
	$(if $(TARGET_FB),install -d $(DESTDIR)$(LIBEXECDIR)/$(HOST_ARCH) && cp $(TARGET_FB) $(DESTDIR)$(LIBEXECDIR)/$(HOST_ARCH)/)
	cp -R profiles overlays $(DESTDIR)$(DATADIR)/

clean:
	rm -rf build build-san pmoves-image

help:
	@echo "targets: all deps check demo bench install clean   options: SANITIZE=1 V=1 PREFIX= DESTDIR="

.PHONY: all tests deps check demo bench install clean help pmoves-image FORCE
FORCE:
.DELETE_ON_ERROR:
.SECONDARY:
-include $(LIB_OBJ:.o=.d) $(BUILDER_OBJ:.o=.d) $(FIRSTBOOT_OBJ:.o=.d) $(TEST_BIN:.t=.d) $(TARGET_OBJ:.o=.d)
