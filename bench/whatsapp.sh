#!/usr/bin/env bash
# WhatsApp webhook benchmark: the release watcher on loopback, signed deliveries from
# CONNECTIONS keep-alive connections for DURATION, once with every message matching a
# keyword and once with 10 % matching; then the task files are counted and must equal the
# matching messages answered 200 (none lost, none doubled).
#
#   bench/whatsapp.sh                      # 50 connections, 20 s, ratios 1.0 and 0.1
#   CONNECTIONS=10 DURATION=5s bench/whatsapp.sh
#   BENCH_DIR=/some/disk bench/whatsapp.sh # where the temporary vaults go (fsync cost)
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-50}
DURATION=${DURATION:-20s}
RATIOS=${RATIOS:-"1.0 0.1"}
SECRET=bench-app-secret-0123456789abcdef

cargo build --release --quiet --bin ai-employee --example webhook_load
BIN=${BIN:-target/release/ai-employee}   # BIN=path compares another build
LOAD=target/release/examples/webhook_load

TMP=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/aie-wa-bench.XXXXXX")
WATCHER_PID=
cleanup() {
    if [[ -n "$WATCHER_PID" ]] && kill -0 "$WATCHER_PID" 2>/dev/null; then
        kill -KILL "$WATCHER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

echo "host: $(uname -sr), $(nproc) CPUs; vaults in $(df -PT "$TMP" | awk 'NR==2 {print $2}') at $TMP"
status=0
for ratio in $RATIOS; do
    vault="$TMP/vault-$ratio"
    mkdir -p "$vault/credentials"
    printf 'app_secret = "%s"\nverify_token = "bench"\n' "$SECRET" >"$vault/credentials/whatsapp.toml"
    chmod 600 "$vault/credentials/whatsapp.toml"
    log="$TMP/watcher-$ratio.log"

    "$BIN" watch whatsapp --vault "$vault" --listen 127.0.0.1:0 2>"$log" &
    WATCHER_PID=$!
    port=
    for _ in $(seq 1 600); do # up to 30 s
        port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$log" | head -n1)
        [[ -n "$port" ]] && break
        kill -0 "$WATCHER_PID" 2>/dev/null || { cat "$log"; exit 1; }
        sleep 0.05
    done
    [[ -n "$port" ]] || { echo "watcher did not start:"; cat "$log"; exit 1; }

    echo
    echo "== match ratio $ratio: $CONNECTIONS connections, $DURATION =="
    out="$TMP/load-$ratio.txt"
    "$LOAD" --url "http://127.0.0.1:$port/webhook" --secret "$SECRET" \
        --connections "$CONNECTIONS" --duration "$DURATION" --match-ratio "$ratio" | tee "$out"
    rss=$(awk '/VmHWM/ {print $2 " " $3}' "/proc/$WATCHER_PID/status" 2>/dev/null || echo "n/a")

    kill -TERM "$WATCHER_PID"
    wait "$WATCHER_PID" && code=0 || code=$?
    WATCHER_PID=

    tasks=$(find "$vault/Needs_Action" -name 'WHATSAPP_*.md' | wc -l)
    sent=$(sed -n 's/^matching_ok=//p' "$out")
    failed=$(sed -n 's/^matching_failed=//p' "$out")
    echo "watcher peak RSS: $rss; exit code after SIGTERM: $code"
    echo "task files: $tasks; matching messages answered 200: $sent (not answered 200: $failed)"
    if [[ "$code" != 0 ]]; then
        echo "FAIL: watcher exited $code"; status=1
    fi
    # Every 200 promises a durable task; a matching message that got no 200 may or may not
    # have been written before the error, so it bounds the count from above.
    if (( tasks < sent || tasks > sent + failed )); then
        echo "FAIL: $tasks task files for $sent matching messages answered 200"; status=1
    else
        echo "OK: no task lost"
    fi
done
exit $status
