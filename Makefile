# clat-eamt developer entry points.  `make demo` and `make test` are the two set-up commands of
# the README: on a fresh Debian machine as root they install what they need themselves.

PYTHON ?= python3
VENV   := .venv
TOX    := $(VENV)/bin/tox
# Debian packages the tests and the lab need, as "command:package" (installed only if missing).
# A bare Debian has no make: `apt-get install -y make` comes first (README, Set-up).
# dnsmasq-base, not dnsmasq: the latter starts a system dnsmasq on port 53.  chromium renders
# the LuCI pages headless (tests/browser, `make screenshots`); node checks the LuCI JavaScript
# and runs the settings view against a stand-in of LuCI's form (tests/unit/test_luci_*.py);
# msguniq (gettext) checks the LuCI i18n template as LuCI's i18n-scan.pl would write it.
# python3.11 compiles the packages' bytecode for OpenWrt 24.10's Python (openwrt/ipkg.py).
# signify-openbsd, wget and openssl stand in for usign and uclient-fetch and make the operator's
# table's test CA (tests/unit/standin_provider, tests/integration/test_provider_lab.py).
HOST_TOOLS := python3:python3 python3.11:python3.11 dnsmasq:dnsmasq-base unbound:unbound \
	knotd:knot tayga:tayga dnsperf:dnsperf nft:nftables conntrack:conntrack ip:iproute2 \
	shellcheck:shellcheck chromium:chromium node:nodejs msguniq:gettext \
	signify-openbsd:signify-openbsd wget:wget openssl:openssl

.PHONY: all test lint demo docs bench footprint fuzz ipk screenshots host-deps clean

all: test

# Install missing Debian packages (only what is missing; apt-get update once, first).
host-deps:
	@missing=""; \
	for pair in $(HOST_TOOLS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/$${pair%%:*}" ] || \
			missing="$$missing $${pair#*:}"; \
	done; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "make: need root to install:$$missing" >&2; exit 1; fi; \
		echo "installing Debian packages:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "clat-eamt needs Python >= 3.11")'

$(TOX): | host-deps
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'tox>=4,<5'

test: $(TOX)
	$(TOX) -e tests

lint: $(TOX)
	$(TOX) -e lint

# Regenerate the files derived from the config schema (README options table, default UCI file,
# the LuCI form's schema.js), then the LuCI i18n template from the app's sources.
docs: $(TOX)
	$(TOX) -e tests --notest
	.tox/tests/bin/python tools/docs.py
	.tox/tests/bin/python openwrt/i18n_pot.py --write

# The 464XLAT lab (namespaces, knot, unbound DNS64, NAT64, tayga as the CLAT) with clat-eamt and
# dnsmasq on its router, real traffic from IPv4-only and dual-stack clients, a report; torn down
# at the end, also on Ctrl-C.  `make demo KEEP=1` keeps the lab up for exploring until Enter.
demo: $(TOX)
	@$(TOX) -q -e tests --notest >/dev/null
	.tox/tests/bin/python -m tests.demo $(if $(KEEP),--keep)

# Benchmarks print ratios against a baseline measured in the same run (never timed asserts).
bench: $(TOX) footprint
	@$(TOX) -q -e tests --notest >/dev/null
	.tox/tests/bin/python -m tests.bench.dns_bench
	.tox/tests/bin/python -m tests.bench.dataplane_bench
	.tox/tests/bin/python -m tests.bench.scale_bench
	.tox/tests/bin/python -m tests.bench.provider_bench

# A million random and mutated DNS messages through the proxy's request and answer paths, on
# loopback, bounded in time (tests/fuzz.py; `make test` runs a short version).  FUZZ_ARGS, e.g.
# `--seed N` to repeat a run.
fuzz: $(TOX)
	@$(TOX) -q -e tests --notest >/dev/null
	.tox/tests/bin/python -m tests.fuzz $(FUZZ_ARGS)

# What clat-eamt costs a router: the ipk and what it installs, the daemon's memory idle and with
# 10,000 mappings, its start time (tests/bench/footprint.py), one line.
footprint: $(TOX)
	@$(TOX) -q -e tests --notest >/dev/null
	.tox/tests/bin/python -m tests.bench.footprint

# The OpenWrt packages (clat-eamt, python3-dnslib, luci-app-clat-eamt) as .ipk files in build/ipk/,
# built from the feed's Makefiles without the SDK (openwrt/ipkg.py; dnslib comes from PyPI).
ipk: $(TOX)
	$(VENV)/bin/python openwrt/ipkg.py --out build/ipk

# The LuCI status and settings pages in headless Chromium against the daemon in the lab (root),
# as luci-app/screenshots/status.png (the README's picture) and settings.png.  The page around
# the views is the browser test's stand-in for LuCI, not a LuCI theme.
screenshots: $(TOX)
	@$(TOX) -q -e tests --notest >/dev/null
	.tox/tests/bin/python -m tests.browser.screenshots luci-app/screenshots

clean:
	rm -rf $(VENV) .tox .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist src/*.egg-info
