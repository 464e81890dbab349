#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for SECONDS each (default 60; 0 skips), from its seed corpus in
# fuzz/seeds/ plus the corpus grown by earlier runs (kept outside the clone). Needs the nightly
# toolchain; installs cargo-fuzz when missing. Fails on the first crash, hang or memory blow-up,
# leaving the input under fuzz/artifacts/. Prints libFuzzer's final stats of each target.
set -euo pipefail
cd "$(dirname "$0")/.."
EACH="${1:-60}"
# 0 skips fuzzing (libFuzzer would take -max_total_time=0 as "forever").
[[ "$EACH" -gt 0 ]] || exit 0
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: the nightly toolchain is not installed; skipping (rustup toolchain install nightly)" >&2
  exit 0
fi
CACHE="${MERIDIAN_CACHE:-$HOME/.cache/meridian}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz --version 0.13.2 >&2
export CARGO_TARGET_DIR="$CACHE/fuzz-target"
# No AddressSanitizer (`-s none`): the targets are safe Rust, and ASan-instrumented C (zstd) breaks
# librdkafka's build. libFuzzer still finds panics, hangs (-timeout) and memory blow-ups (-rss_limit_mb).
for target in $(cargo +nightly fuzz list); do
  corpus="$CACHE/fuzz-corpus/$target"
  mkdir -p "$corpus"
  echo "fuzz: $target for ${EACH}s" >&2
  log="$CACHE/fuzz-$target.log"
  # 2 GiB RSS and 10 s per input are the failure lines: bounded memory, no hangs.
  if ! cargo +nightly fuzz run -s none "$target" "$corpus" "fuzz/seeds/$target" -- \
      -max_total_time="$EACH" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    # The failing input's Debug dump can be megabytes: show what went wrong and where it is.
    grep -E -A1 'panicked at|memory allocation|ERROR: libFuzzer|SUMMARY|artifact_prefix|Test unit written' "$log" |
      cut -c1-300 | head -n 30 >&2
    echo "fuzz: $target failed (input under fuzz/artifacts/$target)" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb|new_units_added)' "$log" |
    sed "s/^/fuzz: $target /" >&2 || true
done
