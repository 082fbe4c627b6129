#!/usr/bin/env bash
# Runs switchboard_bench --receipts against the memory store, then against the
# SQLite store (--sync normal), each time on a fresh server, and prints both
# results side by side with the ratio sqlite/memory of delivered messages/s.
# Builds nothing.
#
#   bench/compare.sh SWITCHBOARD_BINARY BENCH_BINARY [bench options...]
#   e.g. bench/compare.sh build/switchboard build/bench/switchboard_bench --duration 5
#
# With taskset and at least 2 CPUs, the server is pinned to CPU 0 and the
# client to CPU 1. Environment:
#   SERVER_THREADS  the server's --threads (default 1: it has one core)
#   SERVER_ARGS     more server options, e.g. "--log-level warn"
#   KEEP_TMP=1      keep the temporary directory (server logs, results)
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 SWITCHBOARD_BINARY BENCH_BINARY [bench options...]" >&2
  exit 2
fi
server_bin=$1
bench_bin=$2
shift 2
for b in "$server_bin" "$bench_bin"; do
  [[ -x $b ]] || { echo "$0: $b is not an executable" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-compare.XXXXXX")
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

server_pin=()
client_pin=()
if command -v taskset >/dev/null 2>&1 && [[ $(nproc) -ge 2 ]]; then
  server_pin=(taskset -c 0)
  client_pin=(taskset -c 1)
  pinning="server on CPU 0, client on CPU 1"
else
  pinning="not pinned (no taskset, or one CPU)"
fi

bench_args=("$@")

# run NAME SERVER_OPTIONS...: a fresh server, one bench run against it with
# bench_args; the bench's key=value output goes to $tmp/NAME.kv.
run() {
  local name=$1
  shift
  # shellcheck disable=SC2086 # SERVER_ARGS is split on purpose
  "${server_pin[@]}" "$server_bin" --listen 127.0.0.1:0 --threads "${SERVER_THREADS:-1}" \
    "$@" ${SERVER_ARGS:-} >"$tmp/$name.out" 2>"$tmp/$name.err" &
  server_pid=$!
  local addr=
  for _ in $(seq 1 200); do
    addr=$(sed -n 's/^listening on //p' "$tmp/$name.out")
    [[ -n $addr ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  if [[ -z $addr ]]; then
    echo "$0: the $name server did not start; its stderr:" >&2
    cat "$tmp/$name.err" >&2
    exit 1
  fi
  echo "== $name: server pid $server_pid on $addr, $pinning" >&2
  local rc=0
  "${client_pin[@]}" "$bench_bin" --url "$addr" --receipts --pid "$server_pid" \
    "${bench_args[@]}" --format kv >"$tmp/$name.kv" 2>"$tmp/$name.bench.err" || rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "$0: the bench against $name exited with $rc" >&2
    cat "$tmp/$name.bench.err" >&2
  fi
  local status=0
  kill -TERM "$server_pid"
  wait "$server_pid" || status=$?
  server_pid=
  if [[ $status -ne 0 ]]; then
    echo "$0: the $name server exited with $status after SIGTERM; its last log lines:" >&2
    tail -5 "$tmp/$name.err" >&2
  fi
  echo "server_exit=$status" >>"$tmp/$name.kv"
  echo "bench_exit=$rc" >>"$tmp/$name.kv"
}

run memory --store memory:
run sqlite --store "sqlite:$tmp/bench.db" --sync normal

# Side by side: every key of the memory run, in its order.
awk -F= '
  FNR == NR { order[++n] = $1; mem[$1] = substr($0, length($1) + 2); next }
  { sql[$1] = substr($0, length($1) + 2) }
  END {
    printf "%-24s %26s %26s\n", "", "memory:", "sqlite: (--sync normal)"
    for (i = 1; i <= n; i++) {
      k = order[i]
      a = mem[k]; b = (k in sql) ? sql[k] : "-"
      gsub(/_\/_/, " / ", a); gsub(/_\/_/, " / ", b)
      printf "%-24s %26s %26s\n", k, a, b
    }
    if (mem["msgs_per_s"] > 0)
      printf "%-24s %26s %26.3f\n", "ratio sqlite/memory", "msgs/s", sql["msgs_per_s"] / mem["msgs_per_s"]
  }' "$tmp/memory.kv" "$tmp/sqlite.kv"
