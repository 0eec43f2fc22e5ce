#!/usr/bin/env bash
# The fault test (SPEC section 12, issue 7): build the gateway, then run
# scripts/fault-test.py against it: a steady load of signed Twilio webhooks while
# redis-server is SIGKILLed and restarted twice and the gateway once. Exits non-zero if
# any acknowledged event is lost or any event is applied twice, any event out is lost
# or doubled, or any delivery's signature fails. About a minute (half of it waiting
# for the debug gateway to deliver the events out).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin dndgate
target="${CARGO_TARGET_DIR:-target}"
exec python3 scripts/fault-test.py --bin "$target/debug/dndgate" "$@"
