#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a bounded time and prints one
# summary line per target. `make fuzz` calls it.
#
#   bash fuzz/run.sh                       # every target, 60 s each
#   FUZZ_SECONDS=300 bash fuzz/run.sh service_requests decode_order
#
# Environment: FUZZ_SECONDS (default 60) per target; FUZZ_RSS_MB (default
# 2048) memory limit; FUZZ_JOBS (default 1) parallel fuzzing processes per
# target (libFuzzer -fork); FUZZ_ARGS extra libFuzzer flags.
#
# Exit status: 0 when no target crashed, 1 when one did (its input is in
# fuzz/artifacts/<target>/; reproduce with
# `cargo fuzz run -s none -O <target> <file>`), 2 when it could not run.
#
# The stable toolchain, no nightly: cargo fuzz normally builds with
# `-Zsanitizer=address`, a nightly-only flag. With `--sanitizer none` (-s none)
# every flag it passes to rustc is a stable `-C` flag (`-Cpasses=sancov-module`
# and the `-Cllvm-args=-sanitizer-coverage-*` options for libFuzzer's coverage
# feedback, plus `--cfg fuzzing`), so it builds and runs on stable Rust with no
# RUSTC_BOOTSTRAP. We lose AddressSanitizer, which matters little here: the
# crate and the code under test are safe Rust, where memory errors cannot
# happen outside `unsafe`, and the properties checked are panics, hangs,
# out-of-memory and the assertions in the targets. libfuzzer-sys aborts on
# any panic, even one the service would catch and turn into INTERNAL, so
# libFuzzer records it as a crash. `-O` builds with optimisations; the fuzz
# crate's release profile keeps debug assertions and overflow checks on.
# libFuzzer's C++ sources are compiled by libfuzzer-sys's build script with the
# system's g++.
#
# Corpora: fuzz/corpus/<target>/ holds the committed seeds and is only read;
# what a run discovers goes to fuzz/scratch/corpus/<target>/ (git-ignored),
# the first, writable corpus directory given to libFuzzer, and is reused by
# later runs on the same machine. `cargo fuzz cmin` on the scratch folder, or
# copying a few small inputs from it, is how a seed is promoted.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here" || exit 2

seconds="${FUZZ_SECONDS:-60}"
rss_mb="${FUZZ_RSS_MB:-2048}"
jobs="${FUZZ_JOBS:-1}"
build_flags=(--sanitizer none -O)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked || exit 2
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "run.sh: building ${targets[*]} (cargo fuzz build ${build_flags[*]})" >&2
for target in "${targets[@]}"; do
    cargo fuzz build "${build_flags[@]}" "$target" || exit 2
done

summaries=()
crashed=0
for target in "${targets[@]}"; do
    scratch="scratch/corpus/$target"
    seeds="corpus/$target"
    log="scratch/logs/$target.log"
    mkdir -p "$scratch" "$seeds" "scratch/logs"
    echo "run.sh: fuzzing $target for ${seconds}s (log: fuzz/$log)" >&2
    flags=(
        -max_total_time="$seconds"
        -rss_limit_mb="$rss_mb"
        -malloc_limit_mb="$rss_mb"
        -timeout=30
        -print_final_stats=1
    )
    case "$target" in
        # Structured input (arbitrary): let inputs grow to many calls quickly
        # instead of libFuzzer's slow default length ramp.
        service_orders) flags+=(-max_len=4096 -len_control=10) ;;
    esac
    if [ "$jobs" -gt 1 ]; then
        flags+=(-fork="$jobs")
    fi
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    cargo fuzz run "${build_flags[@]}" "$target" "$scratch" "$seeds" -- "${flags[@]}" ${FUZZ_ARGS:-} \
        >"$log" 2>&1
    status=$?

    # libFuzzer's status lines: "#N INITED cov: A ft: B corp: ..." after the
    # seeds, "#N DONE cov: C ft: D ..." at the end, and the final stats.
    inited="$(grep -m1 -E '^#[0-9]+\s+INITED' "$log")"
    last="$(grep -E '^#[0-9]+\s+(DONE|NEW|REDUCE|pulse|INITED)' "$log" | tail -1)"
    field() {
        local v
        v="$(sed -nE "s/.* $1: ([0-9]+).*/\1/p" <<<"$2")"
        echo "${v:--}"
    }
    execs="$(sed -nE 's/^stat::number_of_executed_units:\s+([0-9]+)/\1/p' "$log" | tail -1)"
    [ -n "$execs" ] || execs="$(sed -nE 's/^Done ([0-9]+) runs.*/\1/p' "$log" | tail -1)"
    [ -n "$execs" ] || execs="$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")"
    per_sec="$(sed -nE 's/^stat::average_exec_per_sec:\s+([0-9]+)/\1/p' "$log" | tail -1)"
    new_units="$(sed -nE 's/^stat::new_units_added:\s+([0-9]+)/\1/p' "$log" | tail -1)"
    rss="$(sed -nE 's/^stat::peak_rss_mb:\s+([0-9]+)/\1/p' "$log" | tail -1)"
    crash_files="$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tr '\n' ' ')"
    if [ "$status" -eq 0 ]; then
        verdict="no crash"
    else
        verdict="CRASH (exit $status) ${crash_files:-see fuzz/$log}"
        crashed=1
    fi
    summaries+=("$(printf '%-26s %5ss  execs %-10s (%s/s)  cov %s -> %s  features %s -> %s  new units %s  corpus %s  rss %sMB  %s' \
        "$target" "$seconds" "${execs:-?}" "${per_sec:-?}" \
        "$(field cov "$inited")" "$(field cov "$last")" \
        "$(field ft "$inited")" "$(field ft "$last")" \
        "${new_units:-?}" "$(ls "$scratch" | wc -l)" "${rss:-?}" "$verdict")")
    if [ "$status" -ne 0 ]; then
        grep -m1 -A8 -E "panicked at|ERROR: libFuzzer" "$log" >&2
    fi
done

echo
echo "fuzz summary (FUZZ_SECONDS=$seconds, -rss_limit_mb=$rss_mb, sanitizer none):"
printf '%s\n' "${summaries[@]}"
exit "$crashed"
