#!/usr/bin/env bash
# Build every fuzz target and run each for a short time on its kept corpus
# (fuzz/corpus/TARGET/). Any crash fails the script; libFuzzer leaves the input in
# fuzz/artifacts/TARGET/. Installs cargo-fuzz if it is missing.
#
#   scripts/fuzz-smoke.sh            # 10 s per target
#   FUZZ_SECONDS=180 scripts/fuzz-smoke.sh
#   scripts/fuzz-smoke.sh address link_token   # only these targets
#
# cargo fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets a stable toolchain
# accept them. The corpus is read, not written: new inputs go to a scratch directory,
# so a smoke run leaves the repository as it was.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-10}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd fuzz
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build -O
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target" "corpus/$target"
    echo "fuzz $target for ${seconds}s"
    # Scratch first: libFuzzer writes new inputs to the first corpus directory.
    set +e
    cargo fuzz run -O "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        >"$scratch/$target.log" 2>&1
    status=$?
    set -e
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$scratch/$target.log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$scratch/$target.log" >&2
        echo "FAIL: $target (the input is in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
done
echo "fuzz smoke: ${#targets[@]} targets, ${seconds}s each, no crash"
