# Two commands do everything on a fresh Debian/Ubuntu machine with Python 3.11+:
#   make run    JupyterHub behind traefik-proxy (file provider) on http://127.0.0.1:8000
#   make test   every test: the real-traefik suite in tests/ and the properties/
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test bench clean chromium pebble mutate

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-demo: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[demo]'
	touch $@

run: $(VENV)/.installed-demo
	$(PY) examples/run_demo.py

# tests/test_browser.py drives Debian's Chromium (Playwright downloads no
# browser); without it that one test skips and says why
chromium:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		echo "installing Debian's chromium for the browser test"; \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		|| echo "could not install chromium: tests/test_browser.py will skip"; \
	fi

# tests/test_letsencrypt.py runs Let's Encrypt's ACME test server: Debian's
# pebble (which ships pebble-challtestsrv, its DNS), and makes Chromium trust
# its root with certutil (libnss3-tools). Without them those tests skip,
# except under CI=true, where a failed install fails the run.
pebble:
	@if ! command -v pebble >/dev/null || ! command -v pebble-challtestsrv >/dev/null \
			|| ! command -v certutil >/dev/null; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		echo "installing Debian's pebble for the Let's Encrypt tests"; \
		if ! { command -v apt-get >/dev/null && $$sudo apt-get update -qq && \
			$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				-o DPkg::Lock::Timeout=300 pebble libnss3-tools; }; then \
			if [ "$$CI" = true ]; then echo "could not install pebble (CI=true: failing)"; exit 1; fi; \
			echo "could not install pebble: tests/test_letsencrypt.py will skip"; \
		fi; \
	fi

test: install chromium pebble
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# the mutation canary: each claimed behaviour broken on purpose must fail a test
mutate: install
	$(PY) tools/mutate.py $(MUTATE_ARGS)

# the benchmarks (benchmarks/README.md), results under benchmarks/results/.
# BENCH picks one, BENCH_ARGS are its options (BENCH_ARGS=--help lists them):
#   bench           add/delete/get_all_routes against upstream and CHP (the default)
#   dataplane       requests through the proxy against route count (needs wrk, node)
#   churn           requests while routes change, spawn storms (needs wrk, node)
#   kvfloor         etcd/Redis add_route beside Traefik alone
#   reload_profile  where Traefik's CPU goes per route change
#   serializers     libraries against hand-written code on the hot paths
# e.g. make bench BENCH=churn BENCH_ARGS="--routes 10000 --systems ours-file,chp"
BENCH ?= bench
BENCH_DEFAULT_ARGS = --sizes 100,1000 --backends file,etcd,redis --others upstream,chp
BENCH_ARGS ?= $(if $(filter bench,$(BENCH)),$(BENCH_DEFAULT_ARGS))
# those comparing against CHP (and upstream) install them when missing
BENCH_SETUP = $(if $(filter bench dataplane churn,$(BENCH)),--setup)

bench: install
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m benchmarks.$(BENCH) $(BENCH_SETUP) $(BENCH_ARGS)

clean:
	rm -rf run/ .pytest_cache .hypothesis

# the documentation site (Sphinx + MyST, docs/conf.py) into docs/_build/html;
# any warning fails it, an unresolved cross-reference included
.PHONY: docs
$(VENV)/.installed-docs: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $@

docs: $(VENV)/.installed-docs
	$(VENV)/bin/sphinx-build -W --keep-going -n -b html docs docs/_build/html $(SPHINXOPTS)

# lint and types: ruff (lint + format check), mypy (strict on traefik_proxy/core);
# the settings are in pyproject.toml, .pre-commit-config.yaml runs the same
.PHONY: lint
$(VENV)/.installed-lint: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[lint]'
	touch $@

lint: $(VENV)/.installed-lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
