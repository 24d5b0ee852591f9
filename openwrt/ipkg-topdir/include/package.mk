# Stand-in for OpenWrt's include/package.mk (see ../README.md).
#
# $(eval $(call BuildPackage,NAME)) does two things:
# - writes the package's variables, one file each, to $(IPKG_META)/NAME/ (at parse time:
#   `make ipkg-meta` only parses);
# - defines the target ipkg-stage-NAME, which runs Build/Prepare, Build/Compile and the
#   package's install recipe into $(IPKG_STAGE)/NAME, expanded as often as OpenWrt expands
#   them (a recipe's $$$$ is a shell $).

PKG_BUILD_DIR ?= $(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
PKG_INSTALL_DIR ?= $(PKG_BUILD_DIR)/ipkg-install

# No target architecture here: a package must say PKGARCH:=all to be built without the SDK.
define Package/Default
  SECTION:=opt
  CATEGORY:=Extra packages
  SUBMENU:=
  TITLE:=
  URL:=
  DEPENDS:=
  CONFLICTS:=
  PROVIDES:=
  ALTERNATIVES:=
  PKGARCH:=
  MAINTAINER:=$(PKG_MAINTAINER)
  LICENSE:=$(PKG_LICENSE)
  LICENSE_FILES:=$(PKG_LICENSE_FILES)
  VERSION:=$(PKG_VERSION)-r$(PKG_RELEASE)
endef

# A downloaded source (PKG_SOURCE, fetched and checked by ipkg.py) is unpacked without its
# top directory, as OpenWrt's default Build/Prepare does.
define Build/Prepare/Default
	$(if $(PKG_SOURCE),tar -xzf $(DL_DIR)/$(PKG_SOURCE) -C $(PKG_BUILD_DIR) --strip-components=1)
endef

define Build/Prepare
	$(call Build/Prepare/Default)
endef

define Build/Compile
endef

IPKG_FIELDS:=VERSION DEPENDS CONFLICTS PROVIDES ALTERNATIVES SECTION TITLE URL MAINTAINER \
	LICENSE LICENSE_FILES PKGARCH
IPKG_DEFINES:=description config conffiles preinst postinst prerm postrm
IPKG_SOURCE_FIELDS:=PKG_NAME PKG_VERSION PKG_RELEASE PKG_SOURCE PKG_HASH PYPI_NAME

define Ipkg/Meta
$(shell mkdir -p $(IPKG_META)/$(1))
$(foreach v,$(IPKG_FIELDS) $(IPKG_SOURCE_FIELDS),$(file >$(IPKG_META)/$(1)/$(v),$($(v))))
$(foreach v,$(IPKG_DEFINES),$(if $(Package/$(1)/$(v)),$(file >$(IPKG_META)/$(1)/$(v),$(Package/$(1)/$(v)))))
endef

define Ipkg/Stage
ipkg-stage-$(1):
	rm -rf $(PKG_BUILD_DIR) $(IPKG_STAGE)/$(1)
	mkdir -p $(PKG_BUILD_DIR) $(IPKG_STAGE)/$(1)
	$(call Build/Prepare)
	$(call Build/Compile)
	$(call Package/$(1)/install,$(IPKG_STAGE)/$(1))
endef

define BuildPackage
  $(eval $(Package/Default))
  $(eval $(Package/$(1)))
  $(if $(Package/$(1)/description),,$(eval Package/$(1)/description = $(TITLE)))
  $(if $(IPKG_META),$(eval $(call Ipkg/Meta,$(1))))
  $(eval $(call Ipkg/Stage,$(1)))
endef

.PHONY: ipkg-meta
ipkg-meta:
	@true
