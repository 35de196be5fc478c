#!/usr/bin/env bash
# Throughput of `relay serve` against the bench's baseline (c) proxy with an aiosmtplib
# connection pool, measured in one run by the same harness (../shared/bench), and the
# ratios relay / (c). See bench/README.md.
#
#   bench/run_relay_bench.sh                       # policy on and off, 1 KB + 50 KB, c=10
#   VARIANTS=policy-on CONCS="1 10 50" REPS=5 bench/run_relay_bench.sh
#
# Env: VARIANTS ("policy-on policy-off"), FIXTURES ("plain_1k outlook_50k html_50k"),
# CONCS (10), REPS (3), DURATION (s per load run, 0.8), ACCEPTORS (smtp.acceptors, 1),
# DRAIN (seconds the sink waits for a queueing relay, 20), RESULTS (output dir),
# SHARED_BENCH (../shared/bench), BENCH_HOME (~/.cache/relay-bench), ports RELAY_PORT,
# RELAY_SINK_PORT, PROXY_PORT, PROXY_SINK_PORT (25250/25260/25270/25280).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "${SHARED_BENCH:-$root/../shared/bench}" && pwd)
VARIANTS=${VARIANTS:-"policy-on policy-off"}
export FIXTURES=${FIXTURES:-"plain_1k outlook_50k html_50k"} CONCS=${CONCS:-10} REPS=${REPS:-3}
export DURATION=${DURATION:-0.8}
ACCEPTORS=${ACCEPTORS:-1}
DRAIN=${DRAIN:-20}
RELAY_PORT=${RELAY_PORT:-25250} RELAY_SINK_PORT=${RELAY_SINK_PORT:-25260}
PROXY_PORT=${PROXY_PORT:-25270} PROXY_SINK_PORT=${PROXY_SINK_PORT:-25280}
results=${RESULTS:-$root/bench/results/$(date -u +%Y%m%d-%H%M%S)}
relay_bin=$root/.venv/bin/relay
config=$root/bench/relay-bench.toml
order=900-0000000-0000001
buyer=buyer@sender.example  # the From: of the bench fixtures (gen_fixtures.py)
mkdir -p "$results"

# The harness runs from a writable copy of ../shared/bench (BENCH_HOME), which is what its
# scripts do by themselves when ../shared is read-only; doing it here too keeps ../shared
# untouched when we run as root. Nothing is copied into the project.
bench=${BENCH_HOME:-$HOME/.cache/relay-bench}
mkdir -p "$bench" && cp -rf "$shared"/. "$bench"/ && chmod -R u+w "$bench"
if [ ! -x "$bench/.venv/bin/python" ] || ! { command -v smtp-source >/dev/null \
    || [ -x /usr/sbin/smtp-source ]; } || ! command -v swaks >/dev/null; then
  "$bench/setup.sh"
fi
[ -x "$relay_bin" ] || { echo "no $relay_bin: run 'make test' (or pip install -e .) first" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() {  # an SMTP banner on 127.0.0.1:$1 within 30 s
  for _ in $(seq 300); do
    if line=$(exec 3<>"/dev/tcp/127.0.0.1/$1" && read -r -t 5 l <&3 && echo "$l") 2>/dev/null \
        && [[ $line == 220* ]]; then
      return 0
    fi
    sleep 0.1
  done
  echo "nothing answers on 127.0.0.1:$1" >&2; return 1
}

run_relay() {  # $1: variant name (policy-on | policy-off)
  local variant=$1 enabled=true
  [ "$variant" = policy-off ] && enabled=false
  local db=$results/relay-$variant.sqlite3
  rm -f "$db" "$db"-*
  export RELAY_SMTP__LISTEN=127.0.0.1:$RELAY_PORT RELAY_DATABASE__URL=sqlite+aiosqlite:///$db \
    RELAY_DELIVERY__SMARTHOST=127.0.0.1:$RELAY_SINK_PORT RELAY_POLICY__ENABLED=$enabled
  # only when asked: a relay older than the setting would refuse the unknown key
  [ "$ACCEPTORS" = 1 ] || export RELAY_SMTP__ACCEPTORS=$ACCEPTORS
  "$relay_bin" --config "$config" db upgrade >/dev/null
  local alias
  alias=$("$relay_bin" --config "$config" order create $order --buyer $buyer \
    --seller seller@shop.example --buyer-name Buyer --seller-name Shop --json |
    "$root/.venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["seller_alias"])')
  "$relay_bin" --config "$config" serve >"$results/relay-$variant.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_port "$RELAY_PORT"
  echo "== relay serve ($variant, pid $pid) on :$RELAY_PORT, smarthost :$RELAY_SINK_PORT, RCPT $alias"
  RCPT=$alias SENDER=$buyer SINK_PORT=$RELAY_SINK_PORT OUT=$results/relay-$variant \
    "$bench/bench_relay.sh" 127.0.0.1 "$RELAY_PORT" --drain-wait "$DRAIN" 2>&1 |
    tee "$results/relay-$variant.out"
  kill -TERM "$pid" && wait "$pid" || true
  unset RELAY_SMTP__LISTEN RELAY_DATABASE__URL RELAY_DELIVERY__SMARTHOST RELAY_POLICY__ENABLED \
    RELAY_SMTP__ACCEPTORS
}

run_proxy() {
  "$bench/.venv/bin/python" "$bench/servers.py" --mode proxy --fwd pool --port "$PROXY_PORT" \
    --downstream "127.0.0.1:$PROXY_SINK_PORT" --stats-file "$results/proxy-stats.json" \
    --max-lifetime 1800 >"$results/proxy.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_port "$PROXY_PORT"
  echo "== (c) proxy, aiosmtplib pool (pid $pid) on :$PROXY_PORT, downstream :$PROXY_SINK_PORT"
  SINK_PORT=$PROXY_SINK_PORT OUT=$results/proxy "$bench/bench_relay.sh" 127.0.0.1 "$PROXY_PORT" \
    2>&1 | tee "$results/proxy.out"
  kill -TERM "$pid" && wait "$pid" || true
}

echo "results in $results ($(nproc) CPUs; FIXTURES=$FIXTURES CONCS=$CONCS REPS=$REPS" \
  "DURATION=$DURATION ACCEPTORS=$ACCEPTORS; $(uptime))"
run_proxy
for variant in $VARIANTS; do run_relay "$variant"; done
"$root/.venv/bin/python" "$root/bench/bench_report.py" "$results" | tee "$results/ratios.md"
