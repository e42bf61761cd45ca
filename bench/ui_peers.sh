#!/usr/bin/env bash
# W10 (issue 5): time until the first chart of 100 runs × 100k points is drawn
# in headless Chromium, labbook's dashboard against MLflow's UI, on the same data.
#
#   bench/ui_peers.sh                 # full: 100 runs × 100,000 steps (~8 min on 2 cores)
#   bench/ui_peers.sh --quick         # 20 runs × 10,000 steps, for development
#   bench/ui_peers.sh --reps 5 --warmup 1 --cap 120 --workdir /tmp/w10 --keep
#   bench/ui_peers.sh --mlflow-as-is --tools mlflow --reps 1 --cap 600 --time-limit 1200
#
# It seeds a labbook store through the Python SDK and an MLflow SQLite store
# (experiment and runs through MLflow's client against `mlflow server`, the
# points by bulk SQL with that server stopped: see bench/ui_peers_seed.py),
# then for each tool in turn serves its store on a free port (`labbook ui`,
# `mlflow server`; never both at once), runs bench/ui_peers.mjs for it and
# stops its server, also on failure or Ctrl-C. One JSON
# line per tool goes to bench/out/ui_peers.jsonl (--out to change it).
#
# MLflow's store is ANALYZEd before its server starts for the measurement,
# which MLflow itself never does: without statistics SQLite's planner answers
# the chart's per-run query by scanning every run's points (on 2 cores, one
# load took 576 s, against 40-60 s ANALYZEd). That favours MLflow;
# --mlflow-as-is measures the store as MLflow leaves it (expect it to hit --cap).
#
# Each load is capped at --cap seconds (default 180: a capped load makes the
# figure a lower bound); timed loads that would end past --time-limit seconds
# after the start (default 570) are not started, once each tool has one.
#
# Options: --quick | --runs N --steps S, --reps N (3), --warmup N (1 untimed load
# per tool first), --cap S, --time-limit S, --tools labbook,mlflow, --out FILE,
# --mlflow-as-is, --workdir DIR, --keep.
#
# --workdir DIR keeps the seeded stores in DIR (created if missing) and reuses
# them when a later call asks for the same sizes; without it they go into a
# temporary directory that is removed at the end (unless --keep).
#
# Needs: target/release/labbook, .venv (labbook's Python package, NumPy),
# .venv-mlflow (mlflow 3.17.x), web/node_modules (playwright-core), Node.js and
# Chromium (/usr/bin/chromium or CHROMIUM_PATH). Environment overrides:
# LABBOOK_BIN, PYTHON, MLFLOW_PYTHON, MLFLOW_BIN.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LABBOOK_BIN=${LABBOOK_BIN:-$REPO/target/release/labbook}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
MLFLOW_PYTHON=${MLFLOW_PYTHON:-$REPO/.venv-mlflow/bin/python}
MLFLOW_BIN=${MLFLOW_BIN:-$REPO/.venv-mlflow/bin/mlflow}
SEED="$REPO/bench/ui_peers_seed.py"

RUNS=100
STEPS=100000
REPS=3
TIME_LIMIT=570
MLFLOW_ANALYZE=1
WARMUP=1
CAP=180
OUT="$REPO/bench/out/ui_peers.jsonl"
WORKDIR=""
KEEP=0
TOOLS="labbook,mlflow"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) RUNS=20; STEPS=10000; shift ;;
    --runs) RUNS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --cap) CAP=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --time-limit) TIME_LIMIT=$2; shift 2 ;;
    --mlflow-as-is) MLFLOW_ANALYZE=0; shift ;;
    --tools) TOOLS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ui_peers.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

for f in "$LABBOOK_BIN" "$PYTHON" "$MLFLOW_PYTHON" "$MLFLOW_BIN"; do
  [[ -x $f ]] || { echo "ui_peers.sh: $f is missing (make build; make .venv-mlflow/.deps)" >&2; exit 1; }
done

log() { printf '[%s] ui_peers: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# MLflow's client and server: no usage telemetry (nothing to reach here anyway).
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=true

if [[ -n $WORKDIR ]]; then
  mkdir -p "$WORKDIR"
  WORK=$(cd "$WORKDIR" && pwd)
  KEEP=1
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/ui-peers.XXXXXX")
fi

# Servers run in sessions of their own (setsid), so stopping one signals its
# whole tree: MLflow's uvicorn workers and job consumers too.
PIDS=()
stop_group() {
  local pid=$1 i
  kill -0 -- "-$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do # MLflow takes ~10-15 s to wind down its job consumers
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
# Long steps run in the background and are waited for, so that a signal to
# this script is handled at once (bash runs traps only between commands).
CHILD=""
run() {
  "$@" &
  CHILD=$!
  local status=0
  wait "$CHILD" || status=$?
  CHILD=""
  return "$status"
}
cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  if [[ -n $CHILD ]]; then
    kill -TERM "$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
  fi
  for pid in "${PIDS[@]}"; do stop_group "$pid"; done
  if [[ $KEEP == 0 ]]; then rm -rf "$WORK"; else log "stores kept in $WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http NAME PID URL LIMIT_S LOG: polls URL until it answers 200.
wait_http() {
  local name=$1 pid=$2 url=$3 limit=$4 logfile=$5 start=$SECONDS
  until curl -sf -o /dev/null "$url"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before $url answered:"; tail -n 20 "$logfile" >&2; return 1
    fi
    if ((SECONDS - start > limit)); then
      log "$name: no answer from $url within ${limit}s:"; tail -n 20 "$logfile" >&2; return 1
    fi
    sleep 0.25
  done
  log "$name answers at $url ($((SECONDS - start)) s)"
}

MLFLOW_DIR="$WORK/mlflow"
start_mlflow() {
  local port
  port=$(free_port)
  MLFLOW_URL="http://127.0.0.1:$port"
  # `mlflow server` as shipped (default workers), on a SQLite backend store.
  (cd "$MLFLOW_DIR" && exec setsid "$MLFLOW_BIN" server --host 127.0.0.1 --port "$port" \
    --backend-store-uri "sqlite:///$MLFLOW_DIR/mlflow.db" \
    --artifacts-destination "$MLFLOW_DIR/artifacts") >>"$MLFLOW_DIR/server.log" 2>&1 &
  MLFLOW_PID=$!
  PIDS+=("$MLFLOW_PID")
  wait_http mlflow "$MLFLOW_PID" "$MLFLOW_URL/health" 300 "$MLFLOW_DIR/server.log"
}
stop_mlflow() {
  stop_group "$MLFLOW_PID"
  local kept=() pid
  for pid in "${PIDS[@]}"; do [[ $pid == "$MLFLOW_PID" ]] || kept+=("$pid"); done
  PIDS=("${kept[@]}")
}

# ANALYZE the store, or drop its statistics (as MLflow leaves it); server stopped.
mlflow_stats() {
  local flag=--analyze
  [[ $MLFLOW_ANALYZE == 1 ]] || flag=--no-analyze
  run "$PYTHON" "$SEED" mlflow-stats --db "$MLFLOW_DIR/mlflow.db" "$flag" >/dev/null
}
MLFLOW_STORE=analyzed
[[ $MLFLOW_ANALYZE == 1 ]] || MLFLOW_STORE=as-is

# ---------------------------------------------------------------- seeding
SIZE="${RUNS}x${STEPS}"
LABBOOK_STORE="$WORK/labbook/.labbook"
if [[ -f $WORK/labbook.json && $(cat "$WORK/seeded-labbook" 2>/dev/null) == "$SIZE" ]]; then
  log "labbook: reusing the store seeded with $SIZE in $WORK"
else
  rm -rf "$WORK/labbook" "$WORK/labbook.json" "$WORK/seeded-labbook"
  mkdir -p "$WORK/labbook"
  log "labbook: seeding $RUNS runs × $STEPS steps through the Python SDK"
  run "$PYTHON" "$SEED" labbook --dir "$LABBOOK_STORE" --runs "$RUNS" --steps "$STEPS" >"$WORK/labbook.json"
  echo "$SIZE" >"$WORK/seeded-labbook"
fi

if [[ -f $WORK/mlflow.json && $(cat "$WORK/seeded-mlflow" 2>/dev/null) == "$SIZE" ]]; then
  log "mlflow: reusing the store seeded with $SIZE in $WORK"
  mlflow_stats
else
  rm -rf "$MLFLOW_DIR" "$WORK/mlflow.json" "$WORK/seeded-mlflow"
  mkdir -p "$MLFLOW_DIR"
  log "mlflow: starting mlflow server to create the experiment and $RUNS runs"
  start_mlflow
  run "$MLFLOW_PYTHON" "$SEED" mlflow-runs --uri "$MLFLOW_URL" --runs "$RUNS" --steps "$STEPS" >"$WORK/mlflow.json"
  log "mlflow: stopping the server to bulk-insert $((RUNS * STEPS)) points by SQL"
  stop_mlflow
  run "$PYTHON" "$SEED" mlflow-metrics --db "$MLFLOW_DIR/mlflow.db" --ids "$WORK/mlflow.json" --steps "$STEPS" >/dev/null
  echo "$SIZE" >"$WORK/seeded-mlflow"
  mlflow_stats
fi

# ---------------------------------------------------------------- measuring
# Each tool is timed with only its own server running: `mlflow server`
# spends its first seconds importing in five processes (workers and job
# runner), which on 2 cores took a third of the CPU from the other tool's
# page loads when both servers ran at once.
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
measure() { # TOOL: its server's URL is in LABBOOK_URL or MLFLOW_URL
  run node "$REPO/bench/ui_peers.mjs" \
    --labbook "${LABBOOK_URL:-}" --labbook-ids "$WORK/labbook.json" \
    --mlflow "${MLFLOW_URL:-}" --mlflow-ids "$WORK/mlflow.json" \
    --runs "$RUNS" --steps "$STEPS" --reps "$REPS" --warmup "$WARMUP" --cap "$CAP" --tools "$1" \
    --budget "$(( TIME_LIMIT - SECONDS - 20 > 60 ? TIME_LIMIT - SECONDS - 20 : 60 ))" \
    --mlflow-store "$MLFLOW_STORE" --out "$WORK/ui_peers-$1.jsonl"
  cat "$WORK/ui_peers-$1.jsonl" >>"$OUT"
}
if [[ ,$TOOLS, == *,labbook,* ]]; then
  LABBOOK_PORT=$(free_port)
  LABBOOK_URL="http://127.0.0.1:$LABBOOK_PORT"
  (exec setsid "$LABBOOK_BIN" ui --dir "$LABBOOK_STORE" --host 127.0.0.1 --port "$LABBOOK_PORT") \
    >"$WORK/labbook-ui.log" 2>&1 &
  LABBOOK_PID=$!
  PIDS+=("$LABBOOK_PID")
  wait_http labbook "$LABBOOK_PID" "$LABBOOK_URL/" 30 "$WORK/labbook-ui.log"
  measure labbook
  stop_group "$LABBOOK_PID"
  LABBOOK_URL=""
fi
if [[ ,$TOOLS, == *,mlflow,* ]]; then
  log "mlflow: starting the server on the seeded store"
  start_mlflow
  measure mlflow
  stop_mlflow
fi
log "wrote $OUT"
