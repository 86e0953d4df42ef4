#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS_PER_TARGET (default 60), one after the
# other, each on a temporary copy of its seed corpus in fuzz/corpus/<target>/ (so the
# corpus the fuzzer grows is not left in the repository). Exits non-zero as soon as a
# target crashes; the crashing input is in fuzz/artifacts/<target>/.
#
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz needs nightly flags
# (-Zsanitizer, -Cllvm-args); on a stable toolchain they are unlocked with
# RUSTC_BOOTSTRAP=1, which this script sets unless a nightly toolchain is in use.
# FUZZ_SANITIZER=none turns AddressSanitizer off (faster; Rust code is memory safe
# without it, the parsers have no unsafe code).
set -euo pipefail

cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

if ! command -v cargo-fuzz >/dev/null; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
sanitizer="${FUZZ_SANITIZER:-address}"

cargo fuzz build --sanitizer "$sanitizer"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for target in "${targets[@]}"; do
    corpus="$work/$target"
    mkdir -p "$corpus"
    if [ -d "corpus/$target" ]; then
        cp -r "corpus/$target/." "$corpus/"
    fi
    echo "== $target: ${seconds}s (corpus copy in $corpus)"
    if ! cargo fuzz run --sanitizer "$sanitizer" "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1; then
        echo "== $target FAILED; reproduce with:" >&2
        echo "   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $target artifacts/$target/<file>)" >&2
        exit 1
    fi
done
echo "== all ${#targets[@]} targets ran ${seconds}s without a crash"
