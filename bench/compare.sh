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

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-compare.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
on_exit() {
  bench_cleanup
  if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

server_cpus=
client_cpus=
if command -v taskset >/dev/null 2>&1 && [[ $(nproc) -ge 2 ]]; then
  server_cpus=0
  client_cpus=1
  pinning="server on CPU 0, client on CPU 1"
else
  pinning="not pinned (no taskset, or one CPU)"
fi

bench_args=("$@")
read -ra server_args <<<"${SERVER_ARGS:-}"
# The bench bounds its own run; this bounds the bench (its --duration, if
# given, plus generous room for warm-up, drain and connecting).
duration=10
for ((i = 0; i < ${#bench_args[@]}; i++)); do
  case ${bench_args[i]} in
    --duration | -d) duration=${bench_args[i + 1]:-10} ;;
    --duration=*) duration=${bench_args[i]#--duration=} ;;
  esac
done
limit=$(awk -v d="$duration" 'BEGIN { printf "%d", d + 120 }')

# run NAME SERVER_OPTIONS...: a fresh server, one bench run against it with
# bench_args; the bench's key=value output goes to $tmp/NAME.kv.
run() {
  local name=$1
  shift
  start_switchboard "$name" "$server_cpus" "$server_bin" --threads "${SERVER_THREADS:-1}" \
    "$@" "${server_args[@]}" || exit 1
  echo "== $name: server pid $server_pid on $server_addr, $pinning" >&2
  local pin
  pin_cmd "$client_cpus"
  run_bounded "$limit" "$tmp/$name.kv" "$tmp/$name.bench.err" \
    "${pin[@]}" "$bench_bin" --url "$server_addr" --receipts --pid "$server_pid" \
    "${bench_args[@]}" --format kv
  local rc=$run_status
  if [[ $rc -ne 0 ]]; then
    echo "$0: the bench against $name exited with $rc" >&2
    cat "$tmp/$name.bench.err" >&2
  fi
  stop_server
  if [[ $server_status -ne 0 ]]; then
    echo "$0: the $name server exited with $server_status after SIGTERM; its last log lines:" >&2
    tail -5 "$tmp/$name.server.err" >&2
  fi
  echo "server_exit=$server_status" >>"$tmp/$name.kv"
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
