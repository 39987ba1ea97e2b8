# order-management: every command a developer or CI needs.
# `make test` is the one CI runs (see .ci/run).

CARGO ?= cargo
ID ?= 101
# The commit the server reports in order_management_build_info (read with
# option_env!: the main package has no build script).
export ORDER_GIT_COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null)

.PHONY: test fmt-check clippy check-codegen check-contract codegen server client interop soak fuzz bench profile overload attacks cluster

## Everything CI checks: formatting, lints, generated code, all tests.
test: fmt-check clippy check-codegen
	$(CARGO) test --workspace --locked

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Fails when generated/ is not what proto/ produces.
check-codegen:
	$(CARGO) xtask codegen --check

## Fails when proto/ (uncommitted edits included) breaks the wire contract committed at HEAD.
check-contract:
	$(CARGO) xtask breaking --against HEAD

## Rewrites generated/ from proto/ (no protoc needed).
codegen:
	$(CARGO) xtask codegen

## Interop with the Python reference (grpcio/protobuf from PyPI): both directions, wire fixtures.
interop:
	bash tests/interop/run.sh

## A 60 s soak of the release server (SOAK_SECONDS to change); see RELIABILITY.md.
soak:
	bash tests/load/soak.sh

FUZZ_SECONDS ?= 60

## Every cargo-fuzz target for FUZZ_SECONDS each, on the stable toolchain (fuzz/run.sh).
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh $(FUZZ_TARGETS)

## Our server vs bare tonic, Python grpcio and Node grpc-js on this machine (~10 min; see docs/bench/BENCHMARKS.md).
## BENCH_ARGS=--quick for a smoke test, BENCH_ARGS=--write-report to rewrite docs/bench/BENCHMARKS.md.
bench:
	$(CARGO) xtask bench $(BENCH_ARGS)

## Instructions per getOrder, ours vs bare tonic, by callgrind (exact on a noisy machine).
## PROFILE_ARGS=--write-report to rewrite docs/bench/PROFILE.md.
profile:
	$(CARGO) xtask profile $(PROFILE_ARGS)

## Reads under a write flood and admitted calls at 10x the call limit: p99 vs unloaded (~1 min).
## OVERLOAD_ARGS=--write-report to rewrite docs/bench/OVERLOAD.md.
overload:
	$(CARGO) xtask overload $(OVERLOAD_ARGS)

## The server's memory under the hostile clients of issue 16, at their scale (~2 min).
## ATTACKS_ARGS=--write-report to rewrite docs/bench/ATTACKS.md.
attacks:
	$(CARGO) xtask attacks $(ATTACKS_ARGS)

## PostgreSQL and two server replicas on it; a client adds through one and
## reads through the other (examples/cluster.sh; Ctrl-C stops it all).
cluster:
	bash examples/cluster.sh

server:
	$(CARGO) run --bin server

client:
	$(CARGO) run --bin client -- $(ID)
