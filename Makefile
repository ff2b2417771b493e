# Two commands for a new user (see README):  make demo  |  make test
# Every target installs first; `make install` is idempotent (a stamp file
# records the hash of the files that define the environment).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-$(shell cat constraints.txt pyproject.toml scripts/install.sh | sha1sum | cut -c1-12)

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): constraints.txt pyproject.toml scripts/install.sh
	PYTHON=$(PYTHON) bash scripts/install.sh $(VENV)
	rm -f $(VENV)/.installed-*
	touch $@

demo: install
	$(VENV)/bin/slt-deploy demo

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) bench/train_speed.py

clean:
	rm -rf $(VENV) runs
