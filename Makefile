# clat-eamt developer entry points.  `make demo` and `make test` are the two set-up commands of
# the README: on a fresh Debian machine as root they install what they need themselves.

# Debian's own interpreter, whatever else is first on PATH (a pyenv, a newer 3.11): the venv,
# tox's environments, the demo, the benches and the ipk build all run under it, so this machine
# runs what a user's Debian 12 (Python 3.11.2) runs.  `make PYTHON=...` still overrides it.
PYTHON := /usr/bin/python3
VENV   := .venv
TOX    := $(VENV)/bin/tox
# Debian packages, as "command:package" (installed only if the command is missing), in sets:
# base for the venv and `make ipk`, demo for the lab `make demo` runs, test for everything else
# (each set is the one before plus its own).  A bare Debian has no make: `apt-get install -y
# make` comes first (README, Set-up).  dnsmasq-base, not dnsmasq: the latter starts a system
# dnsmasq on port 53.  python3.11 compiles the packages' bytecode for OpenWrt 24.10's Python
# (openwrt/ipkg.py).  procps has sysctl, conntrack lists the CLAT's flows (tests/labkit/xlat.py).
# chromium renders the LuCI pages headless (tests/browser, `make screenshots`); node checks the
# LuCI JavaScript and runs the settings view against a stand-in of LuCI's form
# (tests/unit/test_luci_*.py); msguniq (gettext) checks the LuCI i18n template as LuCI's
# i18n-scan.pl would write it; dnsperf drives the DNS bench and its tests.  signify-openbsd,
# wget and openssl stand in for usign and uclient-fetch and make the operator's table's test CA
# (tests/unit/standin_provider, tests/integration/test_provider_lab.py).
HOST_TOOLS.base := python3:python3 python3.11:python3.11
HOST_TOOLS.demo := $(HOST_TOOLS.base) dnsmasq:dnsmasq-base unbound:unbound knotd:knot \
	tayga:tayga nft:nftables conntrack:conntrack ip:iproute2 sysctl:procps
HOST_TOOLS.test := $(HOST_TOOLS.demo) dnsperf:dnsperf shellcheck:shellcheck chromium:chromium \
	node:nodejs msguniq:gettext signify-openbsd:signify-openbsd wget:wget openssl:openssl

.PHONY: all test lint demo docs bench footprint fuzz ipk apk screenshots fresh-check clean \
	host-deps host-deps.base host-deps.demo host-deps.test venv-python

all: test

# Install a set's missing Debian packages (apt-get update once, first); `host-deps` is them all.
host-deps: host-deps.test
host-deps.base host-deps.demo host-deps.test: host-deps.%:
	@missing=""; \
	for pair in $(HOST_TOOLS.$*); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/$${pair%%:*}" ] || \
			missing="$$missing $${pair#*:}"; \
	done; \
	{ [ -x $(PYTHON) ] && $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; } || \
		missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "make: need root to install:$$missing" >&2; exit 1; fi; \
		echo "installing Debian packages:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "clat-eamt needs Python >= 3.11")'

# A venv (and with it tox's environments) made by another interpreter is made again.
venv-python:
	@if [ -e $(VENV)/bin/python ] && \
		[ "$$(readlink -f $(VENV)/bin/python)" != "$$(readlink -f $(PYTHON))" ]; then \
		echo "make: $(VENV) and .tox were made with $$(readlink -f $(VENV)/bin/python), not $(PYTHON): making them again"; \
		rm -rf $(VENV) .tox; \
	fi

$(TOX): | host-deps.base
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'tox>=4,<5'

# `make apk` first: it fetches Debian 13's python3.13 once (18 MB, openwrt/debian_python.py), with
# which tests/unit/test_apk_packages.py checks the 25.12 packages' bytecode.
test: host-deps.test venv-python $(TOX)
	$(MAKE) --no-print-directory apk
	$(TOX) -e tests

lint: venv-python $(TOX)
	$(TOX) -e lint

# Regenerate the files derived from the config schema (README options table, default UCI file,
# the LuCI form's schema.js), then the LuCI i18n template from the app's sources.
docs: host-deps.test venv-python $(TOX)
	$(TOX) -e tests --notest
	.tox/tests/bin/python tools/docs.py
	.tox/tests/bin/python openwrt/i18n_pot.py --write

# The 464XLAT lab (namespaces, knot, unbound DNS64, NAT64, tayga as the CLAT) with clat-eamt and
# dnsmasq on its router, real traffic from IPv4-only and dual-stack clients, a report; torn down
# at the end, also on Ctrl-C.  `make demo KEEP=1` keeps the lab up for exploring until Enter.
demo: host-deps.demo venv-python $(TOX)
	@$(TOX) -q -e tests --notest >/dev/null
	.tox/tests/bin/python -m tests.demo $(if $(KEEP),--keep)

# Benchmarks print ratios against a baseline measured in the same run (never timed asserts).
# Every part runs, also after one failed; the last line lists the failed parts (tests/bench).
bench: host-deps.test venv-python $(TOX)
	@$(TOX) -q -e tests --notest >/dev/null
	.tox/tests/bin/python -m tests.bench

# A million random and mutated DNS messages through the proxy's request and answer paths, on
# loopback, bounded in time (tests/fuzz.py; `make test` runs a short version).  FUZZ_ARGS, e.g.
# `--seed N` to repeat a run.
fuzz: host-deps.test venv-python $(TOX)
	@$(TOX) -q -e tests --notest >/dev/null
	.tox/tests/bin/python -m tests.fuzz $(FUZZ_ARGS)

# What clat-eamt costs a router: the ipk and what it installs, the daemon's memory idle and with
# 10,000 mappings, its start time (tests/bench/footprint.py), one line.
footprint: host-deps.test venv-python $(TOX)
	@$(TOX) -q -e tests --notest >/dev/null
	.tox/tests/bin/python -m tests.bench.footprint

# The OpenWrt packages (clat-eamt, python3-dnslib, luci-app-clat-eamt) as .ipk files in build/ipk/,
# built from the feed's Makefiles without the SDK (openwrt/ipkg.py; dnslib comes from PyPI).
ipk: host-deps.base venv-python $(TOX)
	$(VENV)/bin/python openwrt/ipkg.py --out build/ipk

# The OpenWrt 25.12 packages (clat-eamt, luci-app-clat-eamt) as apk v3 files in build/apk/, from
# the same Makefiles without the SDK (openwrt/apk.py, openwrt/adb.py): nothing but the host's
# Python, make, coreutils and apt-get.  The modules as Python 3.13 bytecode: python3.13 from PATH,
# else Debian 13's, fetched once into build/python3.13 (openwrt/debian_python.py; Debian 12 has
# no 3.13); as sources if neither is to be had.  APK_ARGS=--sources for sources anyway,
# APK_ARGS=--offline for no download.
apk:
	$(PYTHON) openwrt/apk.py --out build/apk $(APK_ARGS)

# The LuCI status and settings pages in headless Chromium against the daemon in the lab (root),
# as luci-app/screenshots/status.png (the README's picture) and settings.png.  The page around
# the views is the browser test's stand-in for LuCI, not a LuCI theme.
screenshots: host-deps.test venv-python $(TOX)
	@$(TOX) -q -e tests --notest >/dev/null
	.tox/tests/bin/python -m tests.browser.screenshots luci-app/screenshots

# The README's Set-up, literally, in a fresh Debian 12 root (debootstrap), as root: what each
# command printed, its exit code and time (tools/fresh-check; FRESH_ARGS e.g. `--keep DIR`).
fresh-check:
	tools/fresh-check $(FRESH_ARGS)

clean:
	rm -rf $(VENV) .tox .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist src/*.egg-info
