#!/usr/bin/env bash
# A walkthrough of raftkv's native HTTP API with curl. Every command is printed, then run.
# Start a cluster first (`python -m raftkv.devcluster`), or point RAFTKV at any member:
#   RAFTKV=http://127.0.0.1:2379 bash examples/curl_tour.sh
# tests/integration/test_curl_tour.py runs this exact script against a live cluster, and
# checks that every command below also appears in README.md ("The HTTP API with curl").
set -euo pipefail
RAFTKV=${RAFTKV:-http://127.0.0.1:2379}

run() {
    printf '\n$'
    printf ' %q' "$@"
    printf '\n'
    "$@"
    printf '\n'
}

# tour:begin
# Start from a clean slate (the tour uses keys under tour/).
run curl -s -X DELETE "$RAFTKV/v1/kv/tour/?prefix"
# Put and get (values are the raw request body; JSON answers carry value and value_b64).
run curl -s -X PUT "$RAFTKV/v1/kv/tour/greeting" -d 'hello raftkv'
run curl -s "$RAFTKV/v1/kv/tour/greeting"
# The raw bytes of the value.
run curl -s "$RAFTKV/v1/kv/tour/greeting?raw"
# Remember a revision to read history at later.
REV=$(curl -s -X PUT "$RAFTKV/v1/kv/tour/color" -d red | sed -E 's/.*"revision": ([0-9]+).*/\1/')
run curl -s -X PUT "$RAFTKV/v1/kv/tour/color" -d blue
# Historical read: the value as of revision $REV.
run curl -s "$RAFTKV/v1/kv/tour/color?revision=$REV"
# Serializable read: served locally by this member, no leader round-trip (may be stale).
run curl -s "$RAFTKV/v1/kv/tour/color?serializable"
# Prefix, range [start, end), keys only, count only.
run curl -s "$RAFTKV/v1/kv/tour/?prefix"
run curl -s "$RAFTKV/v1/kv/tour/a?range_end=tour/d"
run curl -s "$RAFTKV/v1/kv/tour/?prefix&keys_only"
run curl -s "$RAFTKV/v1/kv/tour/?prefix&count_only"
# The previous value comes back with prev_kv.
run curl -s -X PUT "$RAFTKV/v1/kv/tour/color?prev_kv" -d green
# Compare-and-swap: create only if absent (the second attempt fails with 412).
run curl -s -X PUT "$RAFTKV/v1/kv/tour/lock?if_absent" -d me
run curl -s -w '\nHTTP %{http_code}\n' -X PUT "$RAFTKV/v1/kv/tour/lock?if_absent" -d you
# ...only if the key was last modified at a given revision, or holds a given value.
MOD=$(curl -s "$RAFTKV/v1/kv/tour/lock" | sed -E 's/.*"mod_revision": ([0-9]+).*/\1/')
run curl -s -X PUT "$RAFTKV/v1/kv/tour/lock?if_mod_revision=$MOD" -d me-again
run curl -s -X PUT "$RAFTKV/v1/kv/tour/lock?if_value=me-again" -d me-thrice
# A transaction: compare, then the success or failure branch, atomically.
run curl -s -X POST "$RAFTKV/v1/txn" -d '{"compare": [{"key": "tour/color", "target": "VALUE", "result": "EQUAL", "value": "green"}], "success": [{"put": {"key": "tour/color", "value": "yellow"}}], "failure": [{"range": {"key": "tour/color"}}]}'
# Delete, with the deleted pairs.
run curl -s -X DELETE "$RAFTKV/v1/kv/tour/greeting?prev_kv"
# Leases: grant (id 7777, 60 s), attach a key, keep alive, TTL with keys, list, revoke.
run curl -s -X POST "$RAFTKV/v1/lease/grant" -d '{"id": 7777, "ttl": 60}'
run curl -s -X PUT "$RAFTKV/v1/kv/tour/session?lease=7777" -d alive
run curl -s -X POST "$RAFTKV/v1/lease/7777/keepalive"
run curl -s "$RAFTKV/v1/lease/7777?keys"
run curl -s "$RAFTKV/v1/leases"
run curl -s -X DELETE "$RAFTKV/v1/lease/7777"
run curl -s -w '\nHTTP %{http_code}\n' "$RAFTKV/v1/kv/tour/session"
# Watch: replay history from $REV, then stream live changes (here for 2 seconds).
run curl -sN --max-time 2 "$RAFTKV/v1/watch/tour/?prefix&start_revision=$REV" || true
# Compaction: forget history before $REV (historical reads below it now fail).
run curl -s -X POST "$RAFTKV/v1/compact" -d "{\"revision\": $REV}"
run curl -s -w '\nHTTP %{http_code}\n' "$RAFTKV/v1/kv/tour/color?revision=1"
# Cluster: status, members, every member's status, health, metrics, the OpenAPI document.
run curl -s "$RAFTKV/v1/status"
run curl -s "$RAFTKV/v1/members"
run curl -s "$RAFTKV/v1/cluster/status"
run curl -s "$RAFTKV/health"
run curl -s -o /dev/null -w 'metrics: HTTP %{http_code} %{size_download} bytes\n' "$RAFTKV/metrics"
run curl -s -o /dev/null -w 'openapi: HTTP %{http_code} %{content_type}\n' "$RAFTKV/v1/openapi.json"
# Errors are JSON with a code and a message, e.g. a missing key (404).
run curl -s -w '\nHTTP %{http_code}\n' "$RAFTKV/v1/kv/tour/no-such-key"
