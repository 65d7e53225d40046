# A stand-in for OpenWrt's include/rules.mk with only what
# scripts/openwrt/Makefile uses, so that its make syntax and its recipes
# (Build/Prepare, Build/Compile, Package/tinyedge/install, conffiles) run
# for real in test/e2e/test_packaging.py. The target toolchain is Debian's
# mipsel cross gcc with musl's specs, in place of the SDK's
# mipsel-openwrt-linux-musl-gcc. OpenWrt's own download, packaging and
# ipkg steps are not reproduced.
INCLUDE_DIR := $(TOPDIR)
BUILD_DIR ?= $(HARNESS_OUT)/build
DL_DIR ?= $(HARNESS_OUT)/dl
PKG_INSTALL_ROOT ?= $(HARNESS_OUT)/ipkg
TARGET_CROSS ?= mipsel-linux-gnu-
TARGET_CC ?= $(TARGET_CROSS)gcc -specs /usr/lib/mipsel-linux-musl/musl-gcc.specs
TARGET_AR ?= $(TARGET_CROSS)ar
# ramips/mt7621's flags but -msoft-float (Debian's musl is hard-float).
TARGET_CFLAGS ?= -Os -pipe -mips32r2 -mtune=24kc -fno-caller-saves
TARGET_LDFLAGS ?=
INSTALL_DIR := install -d -m0755
INSTALL_BIN := install -m0755
INSTALL_DATA := install -m0644
INSTALL_CONF := install -m0600
CP := cp -fpR
