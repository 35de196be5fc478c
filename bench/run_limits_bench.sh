#!/usr/bin/env bash
# Issue 13's load run: (1) the cost of counting, run_relay_bench.sh with every limit of
# [limits] off and then on (set far above the load, so every counter is read and bumped
# but none trips); (2) one party floods through its limit while three others write at a
# normal pace (bench/limits_flood.py): the flooder gets exactly its number, the others no
# refusal.
#
#   bench/run_limits_bench.sh                    # VARIANTS=policy-off, plain_1k, c=10, 3 reps
#   FLOOD_LIMIT=200 FLOOD_SECONDS=20 bench/run_limits_bench.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
results=${RESULTS:-$root/bench/results/limits-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$results"
export VARIANTS=${VARIANTS:-policy-off} FIXTURES=${FIXTURES:-plain_1k} CONCS=${CONCS:-10}
export REPS=${REPS:-3}
names=(PER_PARTY_HOUR PER_PARTY_DAY PER_ORDER_DAY PER_IP_MINUTE PROACTIVE_PER_ORDER
       STRANGER_PER_ALIAS_HOUR ARCHIVE_BYTES_PER_PARTY_DAY)
i=0
for round in ${ROUNDS:-off on}; do  # e.g. ROUNDS="off on off on" to interleave
  i=$((i + 1))
  for n in "${names[@]}"; do
    if [ "$round" = off ]; then export "RELAY_LIMITS__$n=0"; else export "RELAY_LIMITS__$n=1000000000000"; fi
  done
  RESULTS=$results/bench-$i-$round "$root/bench/run_relay_bench.sh"
done
for n in "${names[@]}"; do unset "RELAY_LIMITS__$n"; done

# (2) flood through a limit
relay=$root/.venv/bin/relay config=$root/bench/relay-bench.toml
port=${RELAY_PORT:-25250} sink_port=${RELAY_SINK_PORT:-25260}
bench=${BENCH_HOME:-$HOME/.cache/relay-bench}
db=$results/flood.sqlite3
export RELAY_SMTP__LISTEN=127.0.0.1:$port RELAY_DATABASE__URL=sqlite+aiosqlite:///$db \
  RELAY_DELIVERY__SMARTHOST=127.0.0.1:$sink_port RELAY_POLICY__ENABLED=${FLOOD_POLICY:-false} \
  RELAY_LIMITS__PER_PARTY_HOUR=${FLOOD_LIMIT:-200} RELAY_LIMITS__PER_ORDER_DAY=100000 \
  RELAY_LIMITS__PER_IP_MINUTE=0  # every client here is 127.0.0.1; the party limit is the one
"$relay" --config "$config" db upgrade >/dev/null
targets=()
for i in 0 1 2 3; do
  who=$([ $i = 0 ] && echo flooder || echo "calm$i")
  alias=$("$relay" --config "$config" order create "900-0000000-000000$i" --buyer "$who@buyer$i.example" \
    --seller "shop$i@seller.example" --json | "$root/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["seller_alias"])')
  targets+=("$alias=$who@buyer$i.example")
done
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
"$bench/.venv/bin/python" "$bench/servers.py" --mode discard --port "$sink_port" >"$results/flood-sink.log" 2>&1 &
pids+=($!)
"$relay" --config "$config" serve >"$results/flood-relay.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
"$root/.venv/bin/python" "$root/bench/limits_flood.py" --port "$port" --seconds "${FLOOD_SECONDS:-20}" \
  --flood "${targets[0]}" --legit "${targets[1]}" --legit "${targets[2]}" --legit "${targets[3]}" \
  | tee "$results/flood.json"
"$relay" --config "$config" limits show flooder@buyer0.example | tee "$results/flood-limits.txt"
echo "results in $results"
