# Stand-in for the packages feed's lang/python/python3-package.mk (see ../../../../README.md).
# The parts the feed's Makefiles use, with the packages feed's meaning:
#
# - Py3Package NAME defines the package NAME-src next to NAME: NAME installs what the build
#   staged under $(PKG_INSTALL_DIR)$(PYTHON3_PKG_DIR) (the default filespec) plus what
#   Py3Package/NAME/install adds, compiled to legacy bytecode beside each module
#   (`compileall -b -d /`, PYTHONHASHSEED from SOURCE_DATE_EPOCH for reproducible builds), with
#   every .py deleted; NAME-src installs the same with everything but the .py files deleted
#   (so installing it brings the sources back next to the bytecode).
# - PYTHON3_PKG_BUILD (default 1): the package is built as a wheel and installed into
#   $(PKG_INSTALL_DIR).  Without a build backend here, that is the import package's .py files as
#   the sdist has them, which is the whole wheel for a pure-Python distribution with one
#   package (dnslib).

# The Python of the release the ipk is for (OpenWrt 24.10: 3.11); ipkg.py passes it.  Bytecode
# is only valid for the Python version that wrote it: the host Python must be that version
# (apk.py passes HOST_PYTHON3_BIN for 25.12's 3.13: python3.13 from PATH or the one it fetched).
PYTHON3_VERSION?=3.11
PYTHON3_PKG_DIR:=/usr/lib/python$(PYTHON3_VERSION)/site-packages
HOST_PYTHON3_BIN?=python$(PYTHON3_VERSION)
PYTHON3_COMPILEALL_MAX_RECURSION_LEVEL:=20

define Python3/CompileAll
	cd / && PYTHONDONTWRITEBYTECODE=1 $(if $(SOURCE_DATE_EPOCH),PYTHONHASHSEED="$(SOURCE_DATE_EPOCH)") \
		$(HOST_PYTHON3_BIN) -m compileall -q -r "$(PYTHON3_COMPILEALL_MAX_RECURSION_LEVEL)" \
		-b -d '/' $(1)
endef

define Python3/DeleteSourceFiles
	$(FIND) $(1) -type f -name '*.py' -delete
endef

# Not the packages feed's: PYTHON3_KEEP_SOURCES=1 (openwrt/apk.py, when the host has no Python
# of the release) keeps the modules as sources instead of bytecode, which the router's Python
# compiles as it imports them.
ifeq ($(PYTHON3_KEEP_SOURCES),1)
  Python3/CompileAll:=
  Python3/DeleteSourceFiles:=
endif

define Python3/DeleteNonSourceFiles
	$(FIND) $(1) -not -type d -not -name '*.py' -delete
endef

define Python3/DeleteEmptyDirs
	$(FIND) $(1) -mindepth 1 -empty -type d -delete
endef

# The default filespec (+|$(PYTHON3_PKG_DIR)): all of site-packages the build installed.
define Py3Package/CopyInstalled
	if [ -d $(PKG_INSTALL_DIR)$(PYTHON3_PKG_DIR) ]; then \
		$(INSTALL_DIR) $(1)$(PYTHON3_PKG_DIR) && \
		$(CP) $(PKG_INSTALL_DIR)$(PYTHON3_PKG_DIR)/. $(1)$(PYTHON3_PKG_DIR)/ ; \
	fi
endef

define Py3Package
  define Package/$(1)-src
    $$(call Package/$(1))
    DEPENDS:=
    CONFLICTS:=
    PROVIDES:=
    TITLE+= (sources)
  endef

  define Package/$(1)-src/description
    $$(call Package/$(1)/description)

    This package contains the Python source files for $(1).
  endef

  define Package/$(1)-src/config
    depends on PACKAGE_$(1)
  endef

  ifndef Py3Package/$(1)/install
    define Py3Package/$(1)/install
    endef
  endif

  define Package/$(1)/install
	$$(call Py3Package/$(1)/install,$$(1))
	$$(call Py3Package/CopyInstalled,$$(1))
	$$(call Python3/CompileAll,$$(1))
	$$(call Python3/DeleteSourceFiles,$$(1))
	$$(call Python3/DeleteEmptyDirs,$$(1))
  endef

  define Package/$(1)-src/install
	$$(call Py3Package/$(1)/install,$$(1))
	$$(call Py3Package/CopyInstalled,$$(1))
	$$(call Python3/DeleteNonSourceFiles,$$(1))
	$$(call Python3/DeleteEmptyDirs,$$(1))
  endef
endef

PYTHON3_PKG_BUILD?=1
ifeq ($(strip $(PYTHON3_PKG_BUILD)),1)
  define Build/Compile
	$(INSTALL_DIR) $(PKG_INSTALL_DIR)$(PYTHON3_PKG_DIR)/$(PYPI_NAME)
	$(INSTALL_DATA) $(PKG_BUILD_DIR)/$(PYPI_NAME)/*.py $(PKG_INSTALL_DIR)$(PYTHON3_PKG_DIR)/$(PYPI_NAME)/
  endef
endif
