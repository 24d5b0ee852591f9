# clat-eamt developer entry points.  `make demo` and `make test` are the two set-up commands of
# the README: on a fresh Debian machine as root they install what they need themselves.

PYTHON ?= python3
VENV   := .venv
TOX    := $(VENV)/bin/tox
# Debian packages the tests need (more join as the lab lands).
DEBIAN_PACKAGES := python3 python3-venv

.PHONY: all test lint demo docs bench host-deps clean

all: test

# Install missing Debian packages (only what is missing; apt-get update once, first).
host-deps:
	@missing=""; \
	command -v $(PYTHON) >/dev/null 2>&1 || missing="$$missing python3"; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "make: need root to install:$$missing" >&2; exit 1; fi; \
		echo "installing Debian packages:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "clat-eamt needs Python >= 3.11")'

$(TOX): | host-deps
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'tox>=4,<5'

test: $(TOX)
	$(TOX) -e tests

lint: $(TOX)
	$(TOX) -e lint

# Regenerate the files derived from the config schema (README options table, default UCI file).
docs: $(TOX)
	$(TOX) -e tests --notest
	.tox/tests/bin/clat-eamt config docs --write

demo:
	@echo "make demo: not yet available: the self-contained lab (namespaces, dnsmasq, unbound, tayga)"
	@echo "lands with the dataplane issue. Meanwhile try the decision core:"
	@echo "  $(TOX) -e tests -- -q tests/unit/test_cli.py   or   clat-eamt explain --help"

clean:
	rm -rf $(VENV) .tox .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist src/*.egg-info
