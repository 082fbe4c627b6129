#!/usr/bin/env bash
# groups.sh: issue 15's figures, group fan-out and the cost of notifications.
#
#   bench/groups.sh SWITCHBOARD_BINARY BENCH_BINARY
#   REPEAT=3 bench/groups.sh ...            # medians of 3 runs (what docs/performance.md records)
#   SIZES="10 100" STORES=memory PHASES=group bench/groups.sh ...
#
# Every run has a fresh server, `--threads 1 --api-key-file TMP/key`, pinned
# to CPU 0, and the bench pinned to CPU 1; for the Redis store a private
# redis-server (start_redis in lib.sh: random free port, no persistence,
# killed by pid at the end) that is not pinned, so it shares both CPUs.
# Stores: memory (`memory:`), sqlite (`sqlite:TMP/x.db --sync normal`),
# redis (`redis://127.0.0.1:P`, one node).
#
# Phases:
#   group   for each group size N in SIZES and each store: N member sessions
#           PUT into one new group through the API, SENDERS of them sending
#           group messages with ids, each at most W in flight (a slot is freed
#           once the receipt came and every other member got its copy):
#           `switchboard_bench --group-members N`. W is WINDOW if set, else
#           min(128, max(1, COPIES_IN_FLIGHT / (SENDERS x (N-1)))), so that
#           every size has about as many copies in flight. Group messages/s,
#           copies/s, the server's CPU per group message and per copy, the
#           client's per copy, receipt and delivery latency; with Redis also
#           Redis's CPU per copy and its own script time per copy (INFO
#           commandstats, evalsha usec, around the whole bench run).
#   notify  for each store, direct messages (PAIRS pairs, window WINDOW_PAIRS,
#           ids and receipts) three times on fresh servers, back to back, in
#           an order rotated on every repeat: plain, `--notify` (every SEND
#           has "notify":true; the senders count STATUS frames and check that
#           the last message's "delivered" arrives) and `--notify --read`
#           (receivers also send READ; "read" STATUS checked too).
#
# Settings: SIZES (10 100 1000), STORES (memory sqlite redis), PHASES
# (group notify), SENDERS (10), WINDOW (unset), COPIES_IN_FLIGHT (16000),
# PAIRS (50), WINDOW_PAIRS (128), SIZE (64), DURATION (5), WARMUP (1),
# REPEAT (1), SERVER_CPUS (0), CLIENT_CPUS (1), SERVER_ARGS, KEEP_TMP=1.
# Needs redis-server and redis-cli for the redis store.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
bench_binaries "$0" "$@"

SIZES=${SIZES:-10 100 1000}
STORES=${STORES:-memory sqlite redis}
PHASES=${PHASES:-group notify}
SENDERS=${SENDERS:-10}
WINDOW=${WINDOW:-}
COPIES_IN_FLIGHT=${COPIES_IN_FLIGHT:-16000}
PAIRS=${PAIRS:-50}
WINDOW_PAIRS=${WINDOW_PAIRS:-128}
SIZE=${SIZE:-64}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-1}
SERVER_CPUS=${SERVER_CPUS-0}
CLIENT_CPUS=${CLIENT_CPUS-1}
read -ra server_args <<<"${SERVER_ARGS:-}"

for s in $STORES; do
  case $s in
    memory | sqlite) ;;
    redis)
      for c in redis-server redis-cli; do
        command -v "$c" >/dev/null 2>&1 || { echo "$0: the redis store needs $c" >&2; exit 2; }
      done
      ;;
    *) echo "$0: unknown store $s in STORES" >&2; exit 2 ;;
  esac
done
for p in $PHASES; do
  case $p in group | notify) ;; *) echo "$0: unknown phase $p in PHASES" >&2; exit 2 ;; esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-groups.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
on_exit() {
  bench_cleanup
  if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM
printf 'groups-bench-%s\n' "$RANDOM$RANDOM" >"$tmp/key"
pin_cmd "$CLIENT_CPUS"
client_pin=("${pin[@]}")

# redis_usec: "CALLS USEC" of evalsha, then the usec and the calls of all
# commands (those a script runs included: Redis counts them apart too).
redis_usec() {
  redis-cli -p "$redis_port" INFO commandstats | tr -d '\r' | awk -F'[:,=]' '
    /^cmdstat_/ { total += $5; calls += $3; if ($1 == "cmdstat_evalsha") { c = $3; u = $5 } }
    END { printf "%d %d %d %d\n", c, u, total, calls }'
}

# start_store NAME STORE: a server (and for redis its Redis) for one run;
# sets server_pid, server_addr and pids (the bench's --pid/--redis-pid).
start_store() {
  local name=$1 store=$2 uri
  redis_pid=
  case $store in
    memory) uri=(--store memory:) ;;
    sqlite) uri=(--store "sqlite:$tmp/$name.db" --sync normal) ;;
    redis)
      start_redis "$name" || return 1
      uri=(--store "redis://127.0.0.1:$redis_port" --node-id "$name")
      ;;
  esac
  if ! start_switchboard "$name" "$SERVER_CPUS" "$server_bin" --threads 1 \
    --api-key-file "$tmp/key" "${uri[@]}" "${server_args[@]}"; then
    [[ -n $redis_pid ]] && stop_redis
    return 1
  fi
  pids=(--pid "$server_pid")
  [[ -n $redis_pid ]] && pids+=(--redis-pid "$redis_pid")
  return 0
}

stop_store() {
  stop_server
  [[ -n $redis_pid ]] && stop_redis
  return 0
}

# run_bench NAME ARGS...: the bench, pinned, key=value output in $tmp/NAME.kv.
run_bench() {
  local name=$1
  shift
  local limit
  limit=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 90 }')
  run_bounded "$limit" "$tmp/$name.kv" "$tmp/$name.bench.err" \
    "${client_pin[@]}" "$bench_bin" --url "$server_addr" "${pids[@]}" --format kv \
    --size "$SIZE" --duration "$DURATION" --warmup "$WARMUP" "$@"
  if [[ $run_status -ne 0 ]]; then
    echo "   the bench exited with $run_status:" >&2
    tail -3 "$tmp/$name.bench.err" >&2
  fi
  echo "bench_exit=$run_status" >>"$tmp/$name.kv"
}

window_for() {
  if [[ -n $WINDOW ]]; then echo "$WINDOW"; return; fi
  awk -v c="$COPIES_IN_FLIGHT" -v s="$SENDERS" -v n="$1" \
    'BEGIN { w = int(c / (s * (n - 1))); if (w < 1) w = 1; if (w > 128) w = 128; print w }'
}

group_run() {
  local store=$1 n=$2 rep=$3 name=group.$1.$2.$3 w
  w=$(window_for "$n")
  start_store "$name" "$store" || { echo "bench_exit=server" >"$tmp/$name.kv"; return; }
  echo "== group of $n, $store, window $w per sender (run $rep): server pid $server_pid" >&2
  local rb=
  [[ -n $redis_pid ]] && rb=$(redis_usec)
  run_bench "$name" --group-members "$n" --group-senders "$SENDERS" --window "$w" \
    --api-key-file "$tmp/key" --drain 20
  if [[ -n $redis_pid ]]; then
    local ra copies
    ra=$(redis_usec)
    copies=$(sed -n 's/^copies=//p' "$tmp/$name.kv")
    awk -v b="$rb" -v a="$ra" -v n="${copies:-0}" 'BEGIN {
      split(b, x, " "); split(a, y, " "); if (n == 0) exit
      printf "redis_evalsha_per_copy=%.5f\nredis_script_us_per_copy=%.3f\nredis_cmd_us_per_copy=%.3f\n",
        (y[1] - x[1]) / n, (y[2] - x[2]) / n, (y[3] - x[3]) / n
      printf "redis_cmds_per_copy=%.2f\n", (y[4] - x[4]) / n }' >>"$tmp/$name.kv"
  fi
  stop_store
  echo "server_exit=$server_status" >>"$tmp/$name.kv"
}

notify_run() {
  local store=$1 variant=$2 rep=$3 name=notify.$1.$2.$3
  local extra=()
  case $variant in
    notify) extra=(--notify) ;;
    read) extra=(--notify --read) ;;
  esac
  start_store "$name" "$store" || { echo "bench_exit=server" >"$tmp/$name.kv"; return; }
  echo "== direct, $store, $variant (run $rep): server pid $server_pid" >&2
  run_bench "$name" --pairs "$PAIRS" --window "$WINDOW_PAIRS" --receipts --drain 10 "${extra[@]}"
  stop_store
  echo "server_exit=$server_status" >>"$tmp/$name.kv"
}

echo "groups.sh: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg) before" >&2
for rep in $(seq 1 "$REPEAT"); do
  for phase in $PHASES; do
    case $phase in
      group)
        for n in $SIZES; do
          for store in $STORES; do group_run "$store" "$n" "$rep"; done
        done
        ;;
      notify)
        variants=(plain notify read)
        k=$(((rep - 1) % 3))
        order=("${variants[@]:k}" "${variants[@]:0:k}")
        for store in $STORES; do
          for v in "${order[@]}"; do notify_run "$store" "$v" "$rep"; done
        done
        ;;
    esac
  done
done
echo "load $(cut -d' ' -f1-3 /proc/loadavg) after" >&2

# med PREFIX KEY: the median of KEY over $tmp/PREFIX.*.kv ("-" if none).
med() {
  cat "$tmp/$1".*.kv 2>/dev/null | sed -n "s/^$2=//p" | grep -E '^-?[0-9.]+$' | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                              else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# sum PREFIX KEY: the sum over runs (for counts that must be 0).
sum() {
  cat "$tmp/$1".*.kv 2>/dev/null | sed -n "s/^$2=//p" | awk '{ s += $1 } END { print s + 0 }'
}
# medratio A B KEY: the median over repeats of (KEY of run A.r) / (KEY of run B.r):
# each ratio taken between runs made back to back.
medratio() {
  local r a b
  for r in $(seq 1 "$REPEAT"); do
    a=$(sed -n "s/^$3=//p" "$tmp/$1.$r.kv" 2>/dev/null)
    b=$(sed -n "s/^$3=//p" "$tmp/$2.$r.kv" 2>/dev/null)
    [[ -n $a && -n $b ]] && awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) print a / b }'
  done | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2];
                              else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

echo
echo "# groups.sh, $REPEAT run(s), medians; $(date -u '+%Y-%m-%d %H:%M UTC')"
if [[ " $PHASES " == *" group "* ]]; then
  echo
  echo "| store | members | window | group msgs/s | copies/s | server µs/group msg | server µs/copy | client µs/copy | Redis CPU µs/copy | Redis script µs/copy | receipt p50/p99 ms | delivery p50/p99 ms | server CPU % | lost/dup/reord/gaps | exits |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for n in $SIZES; do
    for store in $STORES; do
      p=group.$store.$n
      bad=$(($(sum "$p" lost) + $(sum "$p" duplicated) + $(sum "$p" reordered) + $(sum "$p" seq_gaps) + $(sum "$p" gseq_gaps) + $(sum "$p" misrouted)))
      exits=$(cat "$tmp/$p".*.kv 2>/dev/null | sed -n 's/^bench_exit=//p' | sort | uniq -c | awk '{ printf "%s%s×%s", (NR > 1 ? " " : ""), $1, $2 }')
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s | %s | %s |\n' \
        "$store" "$n" "$(med "$p" window)" "$(med "$p" group_msgs_per_s)" "$(med "$p" copies_per_s)" \
        "$(med "$p" server_cpu_us_per_group_msg)" "$(med "$p" server_cpu_us_per_copy)" \
        "$(med "$p" client_cpu_us_per_copy)" "$(med "$p" redis_cpu_us_per_copy)" \
        "$(med "$p" redis_script_us_per_copy)" \
        "$(awk -v v="$(med "$p" receipt_p50_us)" 'BEGIN { printf "%.1f", v / 1000 }')" \
        "$(awk -v v="$(med "$p" receipt_p99_us)" 'BEGIN { printf "%.1f", v / 1000 }')" \
        "$(awk -v v="$(med "$p" delivery_p50_us)" 'BEGIN { printf "%.1f", v / 1000 }')" \
        "$(awk -v v="$(med "$p" delivery_p99_us)" 'BEGIN { printf "%.1f", v / 1000 }')" \
        "$(med "$p" server_cpu_pct)" "$bad" "$exits"
    done
  done
fi
if [[ " $PHASES " == *" notify "* ]]; then
  echo
  echo "| store | msgs/s plain | notify | notify+read | notify/plain (median of per-run ratios) | server µs/msg plain | notify | notify+read | notify/plain | notify+read/plain | STATUS per msg (notify, +read) | STATUS missing | exits |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for store in $STORES; do
    p=notify.$store
    m0=$(med "$p.plain" msgs_per_s) m1=$(med "$p.notify" msgs_per_s) m2=$(med "$p.read" msgs_per_s)
    c0=$(med "$p.plain" server_cpu_us_per_msg) c1=$(med "$p.notify" server_cpu_us_per_msg)
    c2=$(med "$p.read" server_cpu_us_per_msg)
    missing=$(($(sum "$p.notify" status_missing) + $(sum "$p.read" status_missing)))
    exits=$(cat "$tmp/$p".*.kv 2>/dev/null | sed -n 's/^bench_exit=//p' | sort | uniq -c | awk '{ printf "%s%s×%s", (NR > 1 ? " " : ""), $1, $2 }')
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s, %s | %s | %s |\n' \
      "$store" "$m0" "$m1" "$m2" "$(medratio "$p.notify" "$p.plain" msgs_per_s)" "$c0" "$c1" "$c2" \
      "$(medratio "$p.notify" "$p.plain" server_cpu_us_per_msg)" \
      "$(medratio "$p.read" "$p.plain" server_cpu_us_per_msg)" \
      "$(med "$p.notify" status_per_msg)" "$(med "$p.read" status_per_msg)" "$missing" "$exits"
  done
fi
