# A stand-in for OpenWrt's include/package.mk (see rules.mk here).
PKG_BUILD_DIR ?= $(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)

# Download/NAME sets URL, FILE and HASH; the file must already be in
# DL_DIR (OpenWrt's download.pl would fetch URL/FILE) with that sha256.
# downloads.txt lists "URL/FILE HASH" for the test to compare with
# third_party/*.mk.
define Download
$(eval $(Download/$(1)))
download: download-$(1)
download-$(1):
	echo "$(HASH)  $(DL_DIR)/$(FILE)" | sha256sum -c -
	echo "$(URL)/$(FILE) $(HASH)" >> $(HARNESS_OUT)/downloads.txt
endef

define BuildPackage
compile: download
	rm -rf $(PKG_BUILD_DIR)
	$$(Build/Prepare)
	$$(Build/Compile)

install:
	rm -rf $(PKG_INSTALL_ROOT)
	mkdir -p $(PKG_INSTALL_ROOT)/CONTROL
	$$(call Package/$(1)/install,$(PKG_INSTALL_ROOT))
	printf '%s\n' $$(strip $$(Package/$(1)/conffiles)) > $(PKG_INSTALL_ROOT)/CONTROL/conffiles
endef
