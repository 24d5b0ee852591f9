# Stand-in for the packages feed's lang/python/pypi.mk (see ../../../../README.md).
ifneq ($(strip $(PYPI_NAME)),)
  PYPI_SOURCE_NAME?=$(PYPI_NAME)
  PKG_SOURCE?=$(PYPI_SOURCE_NAME)-$(PKG_VERSION).tar.gz
  PKG_BUILD_DIR:=$(BUILD_DIR)/pypi/$(PYPI_SOURCE_NAME)-$(PKG_VERSION)
endif
