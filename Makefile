# The two commands of the README: `make run` and `make test`. Everything they need is set up
# here: the virtual environment, the Python packages and, as root, the Debian packages.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint system-deps

# system-deps first: libvirt-python builds against Debian's libvirt-dev
$(STAMP): pyproject.toml setup.py | system-deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,libvirt]'
	touch $@

system-deps:
	scripts/install-debian-packages

lint: $(STAMP)
	$(VENV)/bin/ruff check reconciler agent tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: system-deps lint
	$(VENV)/bin/pytest -n 2 --dist loadgroup

run: system-deps $(STAMP)
	$(VENV)/bin/edgefleet validate fleet-example
	$(PY) scripts/demo.py
