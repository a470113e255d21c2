#!/usr/bin/env bash
# Bounded fuzzing of every parser the module exposes to hostile input (docs/harden.md).
#
#   scripts/fuzz.sh                 every target, FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh options_file mailstore_answer
#
# Not part of scripts/test.sh (too slow for CI). A crasher lands in fuzz/artifacts/TARGET/;
# reproduce it with `cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...`, fix the parser,
# and keep the input as a regular unit test next to the parser. Needs cargo-fuzz
# (`cargo install cargo-fuzz`); on a stable toolchain RUSTC_BOOTSTRAP=1 enables the -Z flags
# it uses. Builds go to fuzz/target; new corpus entries to fuzz/corpus (both git-ignored);
# the committed seeds in fuzz/seeds are only read.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "== build (${#targets[@]} targets)"
cargo fuzz build

failed=()
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${seconds}s"
  mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
  if ! cargo fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -max_len=70000 -rss_limit_mb=2048 -print_final_stats=1; then
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "== FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "== all ${#targets[@]} targets ran ${seconds}s without a crash"
