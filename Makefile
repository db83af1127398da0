# lanmeter — one job per target; cargo stays the source of truth for building.
# `make run` and `make test` install the Debian packages they need (apt-get, as root).

SHELL := /bin/bash
CARGO ?= cargo
# Packages the build and the tests need: libpcap for building, tshark as the independent oracle,
# iproute2/ping/iperf3 for live tests in network namespaces, udhcpc as a DHCP client in them,
# ieee-data for device vendors (the OUI registry lanmeter reads at run time).
TEST_DEBS := libpcap-dev pkg-config tshark tcpdump iproute2 iputils-ping iperf3 util-linux ieee-data udhcpc
BENCH_DEBS := $(TEST_DEBS) darkstat tcpreplay time python3
RUN_DEBS := libpcap-dev pkg-config ieee-data
DEMO_PCAP := data/demo-household.pcap

.PHONY: all build run demo test lint fmt bench deps-test deps-run deps-bench clean check-cargo

all: build

# Installs only what is missing; apt-get update runs once, only when something must be installed.
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

check-cargo:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust 1.85 or newer (https://rustup.rs, or your distribution's rustup package)"; exit 1; }

deps-run:
	$(call apt_install,$(RUN_DEBS))

deps-test:
	$(call apt_install,$(TEST_DEBS))

deps-bench:
	$(call apt_install,$(BENCH_DEBS))

build: check-cargo deps-run
	$(CARGO) build --release

# The demo household: a generated capture replayed into ./data, then live capture on the
# default-route interface into the same database (Ctrl-C stops it; it flushes first).
run: build
	mkdir -p data
	./target/release/lanmeter generate $(DEMO_PCAP) --frames 2000000
	./target/release/lanmeter replay $(DEMO_PCAP) --db data/lanmeter.db
	./target/release/lanmeter run

test: check-cargo deps-test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets

lint: check-cargo
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: check-cargo deps-bench
	./bench/run.sh

clean:
	$(CARGO) clean
	rm -rf data bench-out
