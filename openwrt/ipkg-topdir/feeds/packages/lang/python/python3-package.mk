# Stand-in for the packages feed's lang/python/python3-package.mk (see ../../../../README.md).
#
# The Python of the release the ipk is for (OpenWrt 24.10: 3.11); ipkg.py passes it.
PYTHON3_VERSION?=3.11
PYTHON3_PKG_DIR:=/usr/lib/python$(PYTHON3_VERSION)/site-packages

# Py3Package installs what the project's wheel installs into site-packages.  Without a build
# backend here, that is the import package's .py files as the sdist has them, which is the
# whole wheel for a pure-Python distribution with one package (dnslib); OpenWrt ships .pyc
# files and moves the sources to NAME-src.
define Py3Package
  define Package/$(1)-src
    $$(call Package/$(1))
    DEPENDS:=
    TITLE+= (sources)
  endef

  ifndef Package/$(1)/install
    define Package/$(1)/install
	$$(INSTALL_DIR) $$(1)$$(PYTHON3_PKG_DIR)/$$(PYPI_NAME)
	$$(INSTALL_DATA) $$(PKG_BUILD_DIR)/$$(PYPI_NAME)/*.py $$(1)$$(PYTHON3_PKG_DIR)/$$(PYPI_NAME)/
    endef
  endif
endef
