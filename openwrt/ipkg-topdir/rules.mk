# Stand-in for OpenWrt's rules.mk (see README.md): the install commands with OpenWrt's modes.
INCLUDE_DIR:=$(TOPDIR)/include
BUILD_DIR:=$(IPKG_WORK)/build
DL_DIR:=$(IPKG_WORK)/dl

INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
CP:=cp -fpR
LN:=ln -sf
FIND:=find
SED:=sed -i -e
