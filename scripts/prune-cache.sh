#!/usr/bin/env bash
# Bounds the build cache: drops incremental state and, for Meridian's own crates and test
# binaries (rebuilt on every change, each build under a new hash), every build but the newest.
# Third-party artifacts are kept: two hashes of one of them can both be in use (host and target).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${CARGO_TARGET_DIR:-$HOME/.cache/meridian/target}/debug"
rm -rf "$DIR/incremental"
[[ -d "$DIR/deps" ]] || exit 0
stems="meridian meridian_collector meridian_analyzer meridian_agent meridian_fuzz"
for t in tests/*.rs collector/tests/*.rs analyzer/tests/*.rs agent/tests/*.rs examples/*.rs; do
  if [[ -e "$t" ]]; then stems="$stems $(basename "$t" .rs)"; fi
done
for stem in $stems $(for s in $stems; do echo "lib$s"; done); do
  # Newest first; every file of an older hash (binary, .d, .rlib, .rmeta) goes.
  ls -t "$DIR/deps/$stem"-* 2>/dev/null | sed -E "s|.*/$stem-([0-9a-f]{16}).*|\1|" | awk '!seen[$0]++' |
    tail -n +2 | while read -r hash; do rm -f "$DIR/deps/$stem-$hash"*; done || true
done
