# lanmeter — one job per target; cargo stays the source of truth for building.
# `make run` and `make test` install the Debian packages they need (apt-get, as root).

SHELL := /bin/bash
CARGO ?= cargo
# Packages the build and the tests need: libpcap for building, tshark as the independent oracle,
# iproute2/ping/iperf3 for live tests in network namespaces, udhcpc as a DHCP client in them,
# ieee-data for device vendors (the OUI registry lanmeter reads at run time), chromium +
# chromium-driver for browser tests, python3-aiosmtpd as the real SMTP server of the alert tests,
# curl and openssl for the HTTPS test, prometheus (promtool and a scraping server) and
# python3-venv (schemathesis) for the API tests, mosquitto (+ clients) as the real MQTT broker,
# wireshark-common (mergecap, editcap) for the capture-file tests, faketime and sqlite3 for the
# damaged-database tests.
TEST_DEBS := libpcap-dev pkg-config tshark tcpdump iproute2 iputils-ping iperf3 util-linux ieee-data udhcpc chromium chromium-driver python3-aiosmtpd curl openssl prometheus python3-venv mosquitto mosquitto-clients wireshark-common faketime sqlite3 gzip victoria-metrics dnsmasq-base miniupnpd-nftables snmpd
# bench: the peers (darkstat, tcpdump, tcpreplay), wrk for the dashboard, qemu-user (unlike
# qemu-user-static it loads TCG plugins) and gcc for the Pi instruction counts (bench/pi.sh).
BENCH_DEBS := $(TEST_DEBS) darkstat tcpreplay time python3 wrk qemu-user gcc
RUN_DEBS := libpcap-dev pkg-config ieee-data
DEMO_PCAP := data/demo-household.pcap

.PHONY: all build run run-capture demo test lint fmt bench deps-test deps-run deps-bench clean check-cargo
.PHONY: fuzz fuzz-smoke reliability deps-reliability
.PHONY: deb deb-arm64 deb-test package-test package-arm64-test deps-deb deps-deb-test deps-arm64 check-cargo-deb

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

# The demo household: a fresh data/demo.db with 60 days of a 25-device family and live
# synthetic traffic, served on port 8080; it prints the URL (Ctrl-C stops it). The first visit
# asks for an admin password, as a real installation does.
run: build
	mkdir -p data
	rm -f data/demo.db data/demo.db-wal data/demo.db-shm
	$(TARGET_DIR)/release/lanmeter demo --db data/demo.db

# The older demo: a generated capture replayed into ./data, then live capture on the
# default-route interface into the same database (Ctrl-C stops it; it flushes first).
run-capture: build
	mkdir -p data
	$(TARGET_DIR)/release/lanmeter generate $(DEMO_PCAP) --frames 2000000
	$(TARGET_DIR)/release/lanmeter replay $(DEMO_PCAP) --db data/lanmeter.db
	$(TARGET_DIR)/release/lanmeter run

# After the test binaries, tests/fresh-clone.sh runs the corpus tests again from a clone of the
# committed tree in an empty folder (nothing the tests need may live outside the repository).
# Then the Debian package is built, installed, run, upgraded and purged on this machine
# (package-test, root). Between them the fuzz smoke runs every fuzz target briefly (fuzz-smoke).
# The last line sums every test binary's result, the fuzz targets and the package checks.
#
# The package's release build (minutes of CPU on 2 cores) runs in the background at the lowest CPU
# priority while the test binaries run: most of the integration tests' time is spent waiting
# (for minutes to close, for probes, for a browser), and `nice -n 19` gives the tests the CPU
# whenever they want it. Cargo does not hold its build lock while test binaries run. The package
# test waits for that build and fails with its log if it failed.
test: check-cargo deps-test check-cargo-deb deps-deb-test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets --no-run
	rm -f target/deb-build.rc
	(nice -n 19 $(MAKE) --no-print-directory deb >target/deb-build.log 2>&1; echo $$? >target/deb-build.rc) &
	set -o pipefail; $(CARGO) test --all-targets 2>&1 | tee target/test.log
	set -o pipefail; CARGO_TARGET_DIR=$(TARGET_DIR) ./tests/fresh-clone.sh 2>&1 | tee target/fresh-clone.log
	set -o pipefail; $(MAKE) --no-print-directory fuzz-smoke 2>&1 | tee target/fuzz-smoke.log
	@while [ ! -f target/deb-build.rc ]; do sleep 2; done; \
	if [ "$$(cat target/deb-build.rc)" != 0 ]; then tail -30 target/deb-build.log; echo "make deb failed (target/deb-build.log)"; exit 1; fi
	set -o pipefail; $(MAKE) --no-print-directory package-test 2>&1 | tee target/package-test.log
	@awk '/^test result:/ { p += $$4; f += $$6; i += $$8 } /^(package|fuzz): [0-9]+ passed, [0-9]+ failed/ { p += $$2; f += $$4 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' target/test.log target/fresh-clone.log target/fuzz-smoke.log target/package-test.log

lint: check-cargo
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Writes BENCHMARKS.md from bench-out/ (bench/run.sh says what each part measures; 13 minutes
# from a fresh clone with a cold build on an idle 2-core machine).
bench: check-cargo deps-bench
	CARGO_TARGET_DIR=$(TARGET_DIR) ./bench/run.sh

clean:
	$(CARGO) clean
	rm -rf data bench-out

# ---- Fuzzing (libFuzzer; fuzz/run.sh says how) -------------------------------------------------
# Every parser of untrusted bytes for a fixed number of executions; then the total and a
# `fuzz: N passed, M failed` line (one per target) that `make test` counts. Plain cargo on stable
# Rust builds the targets (no cargo-fuzz, no sanitizer), reusing the dependencies `cargo test`
# built in the same target directory; the smoke run is part of `make test`.
fuzz-smoke: check-cargo deps-run
	CARGO_TARGET_DIR=$(TARGET_DIR) ./fuzz/run.sh smoke

fuzz: check-cargo deps-run
	CARGO_TARGET_DIR=$(TARGET_DIR) ./fuzz/run.sh long

# ---- Reliability campaigns (reliability/run.sh): fuzz, soak, fault injection -> RELIABILITY.md ----
RELIABILITY_DEBS := $(TEST_DEBS) tcpreplay faketime sqlite3

deps-reliability:
	$(call apt_install,$(RELIABILITY_DEBS))

reliability: check-cargo deps-reliability
	CARGO_TARGET_DIR=$(TARGET_DIR) ./reliability/run.sh

# ---- Debian packages (docs/INSTALL.md) -------------------------------------------------------
# cargo-deb rewrites target/release/ in Cargo.toml's assets to the real target directory, so the
# man pages are written where it will look: $(TARGET_DIR)[/TRIPLE]/release/man, gzipped here
# because cargo-deb compresses only man pages that are not build products.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
ARM64 := aarch64-unknown-linux-gnu
# dpkg-dev: dpkg-shlibdeps computes Depends; lintian checks the result; systemd: systemd-analyze.
DEB_DEBS := $(RUN_DEBS) dpkg-dev lintian systemd
# The package test also installs the .deb (apt resolves its Depends) and runs it in a namespace;
# mmdebstrap makes the Debian root file system that systemd-nspawn (systemd-container) boots.
DEB_TEST_DEBS := $(DEB_DEBS) iproute2 iputils-ping util-linux man-db curl mmdebstrap systemd-container
# Cross toolchain (TOOLCHAIN.md): the aarch64 linker and C library for rusqlite's bundled SQLite,
# libpcap for arm64 through multiarch, qemu to run the result on this machine.
ARM64_DEBS := gcc-aarch64-linux-gnu libc6-dev-arm64-cross libpcap-dev:arm64 qemu-user-static
ARM64_ENV := PKG_CONFIG_aarch64_unknown_linux_gnu=aarch64-linux-gnu-pkg-config PKG_CONFIG_ALLOW_CROSS=1

check-cargo-deb: check-cargo
	@cargo deb --version 2>/dev/null | grep -q "^cargo-deb 3.8.0" || $(CARGO) install --locked --version 3.8.0 cargo-deb

deps-deb:
	$(call apt_install,$(DEB_DEBS))

deps-deb-test:
	$(call apt_install,$(DEB_TEST_DEBS))

# The amd64 (host) package: target/debian/lanmeter_VERSION_ARCH.deb under the target directory.
# The man pages come from a debug build of the example: its text does not depend on the profile,
# `make test` has built it already (cargo test --all-targets), and a release build of it would
# compile the whole crate a second time with the dev-dependencies' features (minutes on 2 cores).
deb: check-cargo-deb deps-deb
	$(CARGO) run --quiet --example mangen -- $(TARGET_DIR)/release/man >/dev/null
	gzip -9nf $(TARGET_DIR)/release/man/*.1
	$(CARGO) deb

# Everything the arm64 build needs, installed if possible; if not, one line saying so and why.
deps-arm64: check-cargo
	@fail() { echo "make deb-arm64: cannot set up the aarch64 cross build here ($$1); build on the Pi itself with 'make deb' (docs/INSTALL.md)"; exit 1; }; \
	command -v rustup >/dev/null || fail "rustup is missing, needed for the aarch64-unknown-linux-gnu target"; \
	rustup target list --installed | grep -qx $(ARM64) || rustup target add $(ARM64) >/dev/null 2>&1 || fail "rustup target add $(ARM64) failed"; \
	dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64 || fail "dpkg --add-architecture arm64 failed (not root?)"; \
	missing=$$(for p in $(ARM64_DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; } >/dev/null 2>&1 \
			|| fail "apt-get could not install $$(echo $$missing)"; \
	fi

# The Raspberry Pi OS (bookworm, aarch64) package. glibc floor: whatever the Debian 12 toolchain
# links against (2.34+; Pi OS bookworm has 2.36). Bullseye (2.31) users: docs/INSTALL.md.
deb-arm64: check-cargo-deb deps-deb deps-arm64
	$(CARGO) run --release --quiet --example mangen -- $(TARGET_DIR)/$(ARM64)/release/man >/dev/null
	gzip -9nf $(TARGET_DIR)/$(ARM64)/release/man/*.1
	$(ARM64_ENV) $(CARGO) deb --target $(ARM64)

# Builds the amd64 package, then two tests (root; both run even if the first fails):
# test-deb.sh lints it and installs it on this machine, runs it as the lanmeter user on a veth
# pair, upgrades, removes and purges it; test-nspawn.sh installs it in a Debian bookworm booted
# with systemd as PID 1 (systemd-nspawn) and checks the service's first start, pages, sandbox,
# restart, stop, upgrade and purge there. Part of `make test`; it needs a release build (minutes
# on 2 cores), and the first run makes the container's root file system (cached in target/nspawn).
deb-test package-test: deb deps-deb-test
	@host=0; ./packaging/test-deb.sh "$(TARGET_DIR)" || host=$$?; \
	nspawn=0; ./packaging/test-nspawn.sh "$(TARGET_DIR)" || nspawn=$$?; \
	[ $$host = 0 ] && [ $$nspawn = 0 ]

# The arm64 package's binary under qemu replays a generated capture to the same totals as amd64.
package-arm64-test: deb-arm64
	./packaging/test-deb-arm64.sh "$(TARGET_DIR)"
