# libddprof — build, test, demo, bench, install.
#
#   make                      build target/release/libddprof.so (and ddprof-report)
#   make test                 every test (Rust unit + integration tests)
#   make demo                 profile examples/service.py and show the result
#   make bench                overhead table (scripts/bench.sh)
#   make install PREFIX=/usr/local
#   make clean

CARGO   ?= cargo
CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=

RELEASE := target/release
LIB     := $(RELEASE)/libddprof.so
REPORT  := $(RELEASE)/ddprof-report

# pyenv's CPython 3.11 when present, else the system python3.
ifndef PYTHON
PYTHON := $(shell p=$$(ls -d $$HOME/.pyenv/versions/3.11*/bin/python3.11 2>/dev/null | sort -V | tail -n 1); \
                  if [ -n "$$p" ] && [ -x "$$p" ]; then echo "$$p"; else command -v python3; fi)
endif

DEMO_OUT := demo/out

.PHONY: all build test test-env demo bench install clean

all: build

build:
	$(CARGO) build --release

# Python tools for the tests (ddapm-test-agent) live in target/test-venv; CPython 3.14/3.15
# in a Debian unstable root under target/debian-unstable-root (built once, as root; where it
# cannot be, status 3, the 3.14/3.15 tests say they are skipped).
test-env:
	scripts/test-env.sh
	@scripts/debian-python-root.sh >/dev/null || [ $$? -eq 3 ]

test: build test-env
	$(PYTHON) scripts/check-layers.py
	DDPROF_TEST_VENV=$(CURDIR)/target/test-venv $(CARGO) test --release

target/demo/cpu_burn: examples/cpu_burn.c
	@mkdir -p target/demo
	$(CC) -O2 -g -pthread -o $@ $<

demo: build target/demo/cpu_burn
	@rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	@echo "== profiling target/demo/cpu_burn (about 3 s)"
	DD_PROFILING_OUTPUT_PPROF=$(DEMO_OUT)/cpu_burn DD_PROFILING_UPLOAD_PERIOD=60 \
		scripts/ddprof-run target/demo/cpu_burn
	@echo "== profiling examples/service.py with $(PYTHON) (about 10 s)"
	DD_PROFILING_OUTPUT_PPROF=$(DEMO_OUT)/service DD_PROFILING_UPLOAD_PERIOD=60 \
		scripts/ddprof-run $(PYTHON) examples/service.py
	@set -e; files=$$(ls $(DEMO_OUT)/*.pprof 2>/dev/null || true); \
	if [ -z "$$files" ]; then \
		echo "demo: no profile was written to $(DEMO_OUT)/; rerun with DD_PROFILING_LOG_LEVEL=debug to see why" >&2; exit 1; \
	fi; \
	if [ -x $(REPORT) ]; then \
		for f in $$files; do echo; echo "== $$f"; $(REPORT) "$$f"; done; \
	else \
		echo; echo "Profiles written:"; ls -l $$files; echo; \
		echo "ddprof-report is not built yet; view a profile with e.g."; \
		echo "  go tool pprof -top $$(echo $$files | cut -d' ' -f1)"; \
		echo "  go tool pprof -http=:8080 $$(echo $$files | cut -d' ' -f1)"; \
	fi

bench: build
	@if [ -f scripts/bench.sh ]; then \
		if [ -x scripts/bench.sh ]; then scripts/bench.sh; else bash scripts/bench.sh; fi; \
	else \
		echo "bench: scripts/bench.sh is not written yet; no numbers to show."; \
	fi

install: build
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libddprof.so
	install -m 0755 scripts/ddprof-run $(DESTDIR)$(PREFIX)/bin/ddprof-run
	@if [ -f $(REPORT) ]; then \
		echo "install -m 0755 $(REPORT) $(DESTDIR)$(PREFIX)/bin/ddprof-report"; \
		install -m 0755 $(REPORT) $(DESTDIR)$(PREFIX)/bin/ddprof-report; \
	else \
		echo "install: $(REPORT) not built (yet); skipped"; \
	fi

clean:
	$(CARGO) clean
	rm -rf $(DEMO_OUT)
