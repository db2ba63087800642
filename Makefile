# Tributary — the two commands of the README, and a few more.
#   make run    runs the main job end to end (for now: the example job over generated data)
#   make test   runs every test (debug build)
#   make bench  runs the runtime benchmark in release mode and writes bench-results/*.json

SWIFT ?= swift
RUN_ARGS ?=

.PHONY: setup run test bench build clean

setup:
	@bash scripts/setup.sh

run: setup
	$(SWIFT) run -c release example-job $(RUN_ARGS)

build: setup
	$(SWIFT) build --build-tests

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing

bench: setup
	mkdir -p bench-results
	$(SWIFT) run -c release bench-windows --json bench-results/bench-windows.json

clean:
	rm -rf .build bench-results
