# octollm.alert_response -- every entry point an operator or CI needs.
#   make demo        bring up the local test bed and show the closed loop
#   make test        install everything, start the test bed, run all tests
#   make bench       benchmarks (figures as ratios to baselines measured in the same run;
#                    BENCH_ARGS=--quick for small counts, see bench/run.py --help)
#   make testbed-up / testbed-down / testbed-status
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON     ?= python3.11
VENV       := .venv
VPY        := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
COLL_LINK  := .collections/ansible_collections/octollm/alert_response
export OCTOLLM_TESTBED_CACHE ?= $(HOME)/.cache/octollm-testbed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup system-deps venv collection testbed-build testbed-up testbed-down \
        testbed-status test test-unit test-integration test-molecule lint demo bench clean

help:
	@sed -n 's/^#   //p' Makefile

## --- installation (safe to run twice) -------------------------------------------
system-deps:
	@tools/install-system-deps.sh

$(STAMP): requirements.txt constraints.txt
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements.txt -c constraints.txt
	@touch $@

venv: $(STAMP)

# The collection must be importable as octollm.alert_response from this checkout.
collection: $(COLL_LINK)
$(COLL_LINK):
	@mkdir -p $(dir $@)
	@ln -sfn ../../.. $@

setup: system-deps venv collection

## --- test bed --------------------------------------------------------------------
testbed-build: setup
	tests/testbed/build.sh >/dev/null

testbed-up: setup
	$(VPY) tests/testbed/testbed.py up

testbed-down:
	@if [ -x $(VPY) ]; then $(VPY) tests/testbed/testbed.py down; else echo "no venv: nothing started"; fi

testbed-status: setup
	$(VPY) tests/testbed/testbed.py status

## --- tests -----------------------------------------------------------------------
test: setup
	tests/run-all.sh

test-unit: setup
	$(VPY) -m pytest tests/unit -q

lint: setup
	tools/lint.sh

## --- demo and benchmarks -----------------------------------------------------------
demo: setup
	$(VPY) tools/demo.py

BENCH_ARGS ?=
bench: testbed-up
	$(VPY) bench/run.py $(BENCH_ARGS)

clean: testbed-down
	rm -rf .collections .pytest_cache .ruff_cache tests/output
