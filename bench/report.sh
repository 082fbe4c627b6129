#!/usr/bin/env bash
# Prints the whole table of issues 5 and 14 in one run: Switchboard with the
# memory and the SQLite store (--sync normal), with --threads 1 (pinned to CPU
# 0, the client on CPU 1) and --threads 2 (unpinned), optionally a second
# Switchboard binary (SERVER2, e.g. the previous build, for A/B runs), and a
# baseline server (the seed design in Go, pinned to CPU 0 with GOMAXPROCS=1),
# under the same load, with the ratios against each goal and the servers'
# system calls per message. Builds nothing but the baseline, and that only
# when given its build.sh.
#
#   bench/report.sh SWITCHBOARD_BINARY BENCH_BINARY [BASELINE]
#   e.g. bench/report.sh build/release/switchboard build/release/bench/switchboard_bench \
#            /tmp/seed-go
#
# BASELINE is a built seed-go binary, or the seed design's build.sh (it is
# then built into the temporary directory; that needs Go and gorilla). Without
# it, the baseline column and the ratios against it are left out.
#
# Each measurement runs on a fresh server; phases run one after the other
# (throughput, then latency at a fixed rate, then an ordinary fixed rate,
# then idle memory), and within a phase every server in turn (in reverse
# order every other repeat), so that the figures compared are close in time.
# Environment (defaults are issues 5 and 14's settings):
#   PAIRS=50 WINDOW=128 SIZE=64     the load
#   DURATION=5 WARMUP=1             measured seconds per run, after a warm-up
#   RATE=100000                     offered msgs/s for the latency phase (issue 5)
#   ORDINARY_RATE=20000             offered msgs/s for the ordinary-load phase (issue 14)
#   IDLE=15000                      idle sessions for the memory phase (0: skip)
#   PHASES="tput rate ord idle"     which phases to run (a subset, in this order)
#   REPEAT=1                        runs of the throughput and rate phases per server;
#                                   the table shows each figure's median, and the
#                                   worst of lost/duplicated/reordered/misrouted
#   SYSCALLS=1                      count each server's system calls (bench --syscalls:
#                                   tracepoints as root, else /proc/PID/io; 0: off)
#   SERVER2=PATH                    a second Switchboard binary: columns mem1b, sql1b,
#                                   mem2b, sql2b run it (default COLUMNS then adds mem1b)
#   COLUMNS="mem1 sql1 mem2 sql2 base"  which servers to run (a subset, in this order)
#   T2_CLIENT_CPUS=1                where the client runs against --threads 2
#                                   ("" unpinned); the server is never pinned there
#   SERVER_ARGS                     more Switchboard options
#   KEEP_TMP=1                      keep the temporary directory (logs, key=value results)
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 SWITCHBOARD_BINARY BENCH_BINARY [SEED_GO_BINARY | .../seed-go/build.sh]" >&2
  exit 2
fi
server_bin=$1
bench_bin=$2
baseline=${3:-}
for b in "$server_bin" "$bench_bin"; do
  [[ -x $b ]] || { echo "$0: $b is not an executable" >&2; exit 2; }
done
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

PAIRS=${PAIRS:-50}
WINDOW=${WINDOW:-128}
SIZE=${SIZE:-64}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
RATE=${RATE:-100000}
ORDINARY_RATE=${ORDINARY_RATE:-20000}
IDLE=${IDLE:-15000}
PHASES=${PHASES:-tput rate ord idle}
REPEAT=${REPEAT:-1}
SYSCALLS=${SYSCALLS:-1}
SERVER2=${SERVER2:-}
T2_CLIENT_CPUS=${T2_CLIENT_CPUS-1}
if [[ -n $SERVER2 ]]; then
  [[ -x $SERVER2 ]] || { echo "$0: SERVER2=$SERVER2 is not an executable" >&2; exit 2; }
  COLUMNS=${COLUMNS:-mem1 mem1b sql1 mem2 sql2 base}
else
  COLUMNS=${COLUMNS:-mem1 sql1 mem2 sql2 base}
fi
read -ra server_args <<<"${SERVER_ARGS:-}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-report.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
on_exit() {
  bench_cleanup
  if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

if [[ -n $baseline ]]; then
  if [[ $baseline == *.sh ]]; then
    echo "== building the baseline with $baseline" >&2
    run_bounded 600 "$tmp/baseline-build.out" "$tmp/baseline-build.err" \
      sh "$baseline" "$tmp/seed-go"
    if [[ $run_status -ne 0 ]]; then
      echo "$0: $baseline failed ($run_status):" >&2
      tail -20 "$tmp/baseline-build.err" >&2
      exit 1
    fi
    baseline=$tmp/seed-go
  fi
  [[ -x $baseline ]] || { echo "$0: $baseline is not an executable" >&2; exit 2; }
fi

cols=()
for c in $COLUMNS; do
  case $c in
    mem1 | sql1 | mem2 | sql2) cols+=("$c") ;;
    mem1b | sql1b | mem2b | sql2b)
      [[ -n $SERVER2 ]] || { echo "$0: column $c needs SERVER2" >&2; exit 2; }
      cols+=("$c")
      ;;
    base) [[ -n $baseline ]] && cols+=("$c") ;;
    *) echo "$0: unknown column $c in COLUMNS" >&2; exit 2 ;;
  esac
done
[[ ${#cols[@]} -gt 0 ]] || { echo "$0: nothing to run" >&2; exit 2; }

# Every session takes a file in the server and one in the client.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ $IDLE -gt 0 && $(ulimit -n) != unlimited && $((IDLE + 100)) -gt $(ulimit -n) ]]; then
  echo "$0: IDLE=$IDLE needs more open files than the limit $(ulimit -n)" >&2
  exit 2
fi
if ! command -v taskset >/dev/null 2>&1 || [[ $(nproc) -lt 2 ]]; then
  echo "$0: warning: no taskset or fewer than 2 CPUs: nothing is pinned" >&2
fi

title() {
  case $1 in
    mem1) echo "memory 1t" ;;
    sql1) echo "sqlite 1t" ;;
    mem2) echo "memory 2t" ;;
    sql2) echo "sqlite 2t" ;;
    mem1b) echo "srv2 mem 1t" ;;
    sql1b) echo "srv2 sql 1t" ;;
    mem2b) echo "srv2 mem 2t" ;;
    sql2b) echo "srv2 sql 2t" ;;
    base) echo "seed-go" ;;
  esac
}

# start COL: a fresh server for column COL; sets server_pid, server_addr,
# client_cpus and proto. A column ending in b runs SERVER2.
start() {
  local col=$1 name=$1.$2 bin=$server_bin
  proto=switchboard
  client_cpus=1
  if [[ $col == *b && $col != base ]]; then
    bin=$SERVER2
    col=${col%b}
  fi
  case $col in
    mem1) start_switchboard "$name" 0 "$bin" --threads 1 --store memory: "${server_args[@]}" ;;
    sql1)
      start_switchboard "$name" 0 "$bin" --threads 1 \
        --store "sqlite:$tmp/$name.db" --sync normal "${server_args[@]}"
      ;;
    mem2)
      client_cpus=$T2_CLIENT_CPUS
      start_switchboard "$name" "" "$bin" --threads 2 --store memory: "${server_args[@]}"
      ;;
    sql2)
      client_cpus=$T2_CLIENT_CPUS
      start_switchboard "$name" "" "$bin" --threads 2 \
        --store "sqlite:$tmp/$name.db" --sync normal "${server_args[@]}"
      ;;
    base)
      proto=seed
      start_seed "$name" 0 "$baseline"
      ;;
  esac
}

# measure COL PHASE REP: one bench run of PHASE (tput, rate, ord, idle)
# against a fresh server of column COL; key=value results in
# $tmp/COL.PHASE.REP.kv.
measure() {
  local col=$1 phase=$2 kv=$tmp/$1.$2.$3.kv
  local args limit
  case $phase in
    tput | rate | ord)
      args=(--pairs "$PAIRS" --window "$WINDOW" --size "$SIZE" --duration "$DURATION"
        --warmup "$WARMUP" --drain 5)
      [[ $phase == rate ]] && args+=(--rate "$RATE")
      [[ $phase == ord ]] && args+=(--rate "$ORDINARY_RATE")
      [[ $SYSCALLS == 1 ]] && args+=(--syscalls)
      limit=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 60 }')
      ;;
    idle)
      args=(--idle "$IDLE")
      limit=240
      ;;
  esac
  if ! start "$col" "$phase.$3"; then
    echo "server_start=failed" >"$kv"
    return
  fi
  echo "== $phase: $(title "$col"), server pid $server_pid on $server_addr" >&2
  local pin
  pin_cmd "$client_cpus"
  run_bounded "$limit" "$kv" "$tmp/$col.$phase.$3.bench.err" \
    "${pin[@]}" "$bench_bin" --url "$server_addr" --protocol "$proto" --pid "$server_pid" \
    "${args[@]}" --format kv
  if [[ $run_status -ne 0 ]]; then
    echo "   the bench exited with $run_status$([[ $run_status -eq 124 ]] && echo ' (timed out)'):" >&2
    tail -3 "$tmp/$col.$phase.$3.bench.err" >&2
  fi
  echo "bench_exit=$run_status" >>"$kv"
  stop_server
  # The seed design has no clean shutdown: SIGTERM ends it with 143.
  if [[ $server_status -ne 0 && $col != base ]]; then
    echo "   the server exited with $server_status after SIGTERM; its last log lines:" >&2
    tail -3 "$tmp/$col.$phase.$3.server.err" >&2
  fi
  echo "server_exit=$server_status" >>"$kv"
}

phases=()
for p in $PHASES; do
  case $p in
    tput | rate) phases+=("$p") ;;
    ord) [[ $ORDINARY_RATE != 0 ]] && phases+=("$p") ;;
    idle) [[ $IDLE -gt 0 ]] && phases+=("$p") ;;
    *) echo "$0: unknown phase $p in PHASES" >&2; exit 2 ;;
  esac
done
ran() { local p; for p in "${phases[@]}"; do [[ $p == "$1" ]] && return 0; done; return 1; }
ran idle || IDLE=0

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for phase in "${phases[@]}"; do
  reps=$REPEAT
  [[ $phase == idle ]] && reps=1  # memory is steady; opening 15,000 sessions is not quick
  for ((r = 1; r <= reps; r++)); do
    # Every other repeat in reverse: neither server always runs first.
    order=("${cols[@]}")
    if ((r % 2 == 0)); then
      order=()
      for ((i = ${#cols[@]} - 1; i >= 0; i--)); do order+=("${cols[i]}"); done
    fi
    for col in "${order[@]}"; do
      measure "$col" "$phase" "$r"
    done
  done
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------
# The table (get, calc, row, goal...: lib.sh).

width=12

# A row of one key per column, shown through calc UNIT ("" as is, ms, kib,
# int), plus the ratio of the first column to the baseline when RATIO is "ratio".
key_row() {  # LABEL PHASE KEY [ratio] [UNIT]
  local label=$1 phase=$2 key=$3 ratio=${4:-} unit=${5:-} vals=() c v
  for c in "${cols[@]}"; do
    v=$(get "$c" "$phase" "$key")
    [[ -n $unit ]] && v=$(calc "$unit" "$v")
    vals+=("$v")
  done
  if [[ -n $has_base ]]; then
    if [[ $ratio == ratio ]]; then
      vals+=("$(calc ratio "$(get "${cols[0]}" "$phase" "$key")" "$(get base "$phase" "$key")")")
    else
      vals+=("")
    fi
  fi
  # The first column against the same column run with SERVER2 (A/B).
  if [[ -n $has_b ]]; then
    if [[ $ratio == ratio || $ratio == ab ]]; then
      vals+=("$(calc ratio "$(get "${cols[0]}" "$phase" "$key")" "$(get "${cols[0]}b" "$phase" "$key")")")
    else
      vals+=("")
    fi
  fi
  row "$label" "${vals[@]}"
}

# The servers' system calls per delivered message in PHASE (bench
# --syscalls): the total, then each call counted by name that some column
# made at least once per 200 messages.
syscall_rows() {  # PHASE
  local phase=$1 name any c v
  [[ $SYSCALLS == 1 ]] || return 0
  key_row "  server system calls per msg" "$phase" server_syscalls_per_msg ratio
  for name in recvfrom recvmsg read sendto sendmsg write writev epoll_wait epoll_pwait \
    epoll_ctl io_uring_enter futex other; do
    any=
    for c in "${cols[@]}"; do
      v=$(get "$c" "$phase" "server_sys_${name}_per_msg")
      [[ $v != - ]] && awk -v v="$v" 'BEGIN { exit !(v >= 0.005) }' && any=1
    done
    [[ -n $any ]] && key_row "    $name per msg" "$phase" "server_sys_${name}_per_msg" ratio
  done
  key_row "    counted by" "$phase" server_syscalls_source
}

# The rows of a fixed-rate phase (rate, ord) offered RATE msgs/s.
rate_rows() {  # PHASE RATE
  local phase=$1 vals=() c
  echo "fixed rate: $2 msgs/s offered"
  key_row "  sent msgs/s (what the client offered)" "$phase" sent_per_s
  key_row "  delivered msgs/s" "$phase" msgs_per_s
  key_row "  times a sender found its window full" "$phase" rate_window_full
  key_row "  delivery p50 (ms)" "$phase" delivery_p50_us ratio ms
  key_row "  delivery p99 (ms)" "$phase" delivery_p99_us ratio ms
  key_row "  delivery p99.9 (ms)" "$phase" delivery_p999_us ratio ms
  key_row "  server CPU us/msg" "$phase" server_cpu_us_per_msg ratio
  key_row "  client CPU us/msg" "$phase" client_cpu_us_per_msg
  key_row "  server waiting for a CPU, %" "$phase" server_wait_pct
  syscall_rows "$phase"
  for c in "${cols[@]}"; do vals+=("$(checks_cell "$c" "$phase")"); done
  row "  lost/dup/reordered/misrouted" "${vals[@]}"
}

has_base=
for c in "${cols[@]}"; do [[ $c == base ]] && has_base=1; done
first=${cols[0]}
has_b=
for c in "${cols[@]}"; do [[ $c == "${first}b" ]] && has_b=1; done

header=()
for c in "${cols[@]}"; do header+=("$(title "$c")"); done
[[ -n $has_base ]] && header+=("$(title "$first")/base")
[[ -n $has_b ]] && header+=("/ srv2")

echo
echo "switchboard report, $(date -u '+%Y-%m-%d %H:%M UTC'): $PAIRS pairs, window $WINDOW, $SIZE-byte content, ${DURATION} s per run;"
[[ $REPEAT -gt 1 ]] && echo "medians of $REPEAT runs per server (idle memory: one run);"
echo "1t: --threads 1, server on CPU 0, client on CPU 1; 2t: --threads 2, server unpinned, client on CPU ${T2_CLIENT_CPUS:-any};"
echo "seed-go: GOMAXPROCS=1 on CPU 0, client on CPU 1. $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs;"
echo "load average $load_before before the runs, $load_after after (other work on the machine shares these CPUs)."
[[ -n $SERVER2 ]] && echo "srv2 columns: SERVER2=$SERVER2; \"/ srv2\": $(title "$first") over the same column with SERVER2."
echo
row "" "${header[@]}"
if ran tput; then
  echo "throughput (as fast as the window allows)"
  key_row "  delivered msgs/s" tput msgs_per_s ratio
  key_row "  server CPU us/msg" tput server_cpu_us_per_msg ratio
  key_row "  server CPU % of one core" tput server_cpu_pct
  key_row "  client CPU us/msg" tput client_cpu_us_per_msg
  key_row "  client CPU % of one core" tput client_cpu_pct
  key_row "  server waiting for a CPU, %" tput server_wait_pct
  key_row "  client waiting for a CPU, %" tput client_wait_pct
  key_row "  server's busiest thread, % of its CPU" tput server_busiest_thread_pct
  key_row "  delivery p50 (ms)" tput delivery_p50_us "" ms
  syscall_rows tput
  vals=()
  for c in "${cols[@]}"; do vals+=("$(checks_cell "$c" tput)"); done
  row "  lost/dup/reordered/misrouted" "${vals[@]}"
fi
ran rate && rate_rows rate "$RATE"
ran ord && rate_rows ord "$ORDINARY_RATE"
if [[ $IDLE -gt 0 ]]; then
  echo "idle sessions: $IDLE"
  key_row "  opened" idle idle_sessions
  key_row "  server bytes per idle session" idle bytes_per_idle_session ratio
  key_row "  server VmRSS before (KiB)" idle server_rss_before_kib
  key_row "  server VmRSS with them open (KiB)" idle server_rss_after_kib
  key_row "  ended by the server while measured" idle idle_ended_by_server
  key_row "  closed cleanly" idle idle_closed_cleanly
fi

# ---------------------------------------------------------------------------
# Against the goals of issue 5 (memory store).

# rate_note COL [PHASE]: why the fixed-rate PHASE (rate, the default, or
# ord) of COL did not run at its rate, or nothing.
rate_note() {
  local sent full cpu phase=${2:-rate} offered=$RATE
  [[ $phase == ord ]] && offered=$ORDINARY_RATE
  sent=$(get "$1" "$phase" sent_per_s) full=$(get "$1" "$phase" rate_window_full)
  cpu=$(get "$1" "$phase" client_cpu_pct)
  [[ $sent == - ]] && return
  if awk -v s="$sent" -v r="$offered" 'BEGIN { exit !(s < 0.98 * r) }'; then
    if [[ $full != - && $full != 0 ]]; then
      echo "the server kept up with only $(calc int "$sent") msgs/s (its senders found their windows full)"
    else
      echo "the client offered only $(calc int "$sent") msgs/s, at ${cpu} % of its core"
    fi
  fi
}

echo
echo "goals of issue 5 (memory store)"
if has mem1 && ran tput; then
  goal "server CPU us/msg, 1 thread" "$(get mem1 tput server_cpu_us_per_msg)" "<=" 2.0
  [[ -n $has_base ]] && goal "  / baseline's" \
    "$(calc ratio "$(get mem1 tput server_cpu_us_per_msg)" "$(get base tput server_cpu_us_per_msg)")" "<=" 0.38
  if [[ $IDLE -gt 0 ]]; then
    goal "KiB per idle session" "$(calc kib "$(get mem1 idle bytes_per_idle_session)")" "<=" 3
    [[ -n $has_base ]] && goal "  / baseline's" \
      "$(calc ratio "$(get mem1 idle bytes_per_idle_session)" "$(get base idle bytes_per_idle_session)")" "<=" 0.23
  fi
fi
if has mem1 && ran rate; then
  goal "p99 ms at $RATE msgs/s offered, 1 thread" "$(calc ms "$(get mem1 rate delivery_p99_us)")" "<=" 1 \
    "$(rate_note mem1)"
fi
if has mem1 && has mem2 && ran tput; then
  # With the client on the same two cores, the server's second thread shares
  # them with it: at best 2 / (1 + client/server CPU per message) times the
  # rate of one server thread that fills its core.
  ceiling=$(awk -v s="$(get mem1 tput server_cpu_us_per_msg)" -v c="$(get mem1 tput client_cpu_us_per_msg)" \
    'BEGIN { if (s + 0 > 0 && c != "-") printf "%.2f", 2 / (1 + c / s); else print "-" }')
  goal "msgs/s --threads 2 / --threads 1" \
    "$(calc ratio "$(get mem2 tput msgs_per_s)" "$(get mem1 tput msgs_per_s)")" ">=" 1.6 \
    "at most $ceiling here: 2 / (1 + client/server CPU per message)"
fi
if has sql1 && has sql2; then
  printf "%-56s %10s\n" "  (sqlite: msgs/s --threads 2 / --threads 1, no goal)" \
    "$(calc ratio "$(get sql2 tput msgs_per_s)" "$(get sql1 tput msgs_per_s)")"
fi

# Against goal 1 of issue 14 (ordinary load, memory store, 1 thread): the
# system calls and the CPU per message at ORDINARY_RATE, and saturation kept.
if has mem1 && ran ord; then
  echo
  echo "goal 1 of issue 14 (memory store, 1 thread, $ORDINARY_RATE msgs/s offered)"
  if [[ $SYSCALLS == 1 ]]; then
    goal "system calls per msg" "$(get mem1 ord server_syscalls_per_msg)" "<=" 2.1 "$(rate_note mem1 ord)"
    goal "epoll_ctl per msg (none per message)" "$(get mem1 ord server_sys_epoll_ctl_per_msg)" "<=" 0.01
  fi
  [[ -n $has_base ]] && goal "server CPU us/msg / baseline's" \
    "$(calc ratio "$(get mem1 ord server_cpu_us_per_msg)" "$(get base ord server_cpu_us_per_msg)")" "<=" 0.62
  if has mem1b; then
    printf "%-56s %10s\n" "  (server CPU us/msg / SERVER2's, no goal)" \
      "$(calc ratio "$(get mem1 ord server_cpu_us_per_msg)" "$(get mem1b ord server_cpu_us_per_msg)")"
    ran tput && printf "%-56s %10s\n" "  (saturated: server CPU us/msg / SERVER2's, not above noise)" \
      "$(calc ratio "$(get mem1 tput server_cpu_us_per_msg)" "$(get mem1b tput server_cpu_us_per_msg)")"
  fi
fi
# Goals 2 to 4 of issue 14: idle sessions on both stores, the default
# store at saturation, and the load shared by the threads.
if { has mem1 || has sql1 || has mem2; } && { ran idle || ran tput; }; then
  echo
  echo "goals 2 to 4 of issue 14"
  if ran idle && [[ $IDLE -gt 0 ]]; then
    has mem1 && goal "KiB per idle session, memory store" \
      "$(calc kib "$(get mem1 idle bytes_per_idle_session)")" "<=" 3
    has sql1 && goal "KiB per idle session, sqlite store" \
      "$(calc kib "$(get sql1 idle bytes_per_idle_session)")" "<=" 3
  fi
  if ran tput; then
    has sql1 && goal "sqlite: server CPU us/msg at saturation, 1 thread" \
      "$(get sql1 tput server_cpu_us_per_msg)" "<=" 4
    has mem2 && goal "--threads 2: busiest thread, % of the server's CPU" \
      "$(get mem2 tput server_busiest_thread_pct)" "<=" 55
  fi
fi
bad=0
for c in "${cols[@]}"; do
  for p in "${phases[@]}"; do
    [[ $p == idle ]] && continue
    s=$(checks_cell "$c" "$p")
    [[ $s == 0/0/0/0 ]] || bad=$((bad + 1))
  done
done
goal "phases losing, duplicating, reordering or misrouting" "$bad" "<=" 0

# Warnings: what would make a figure above measure something else.
echo
warned=0
for c in "${cols[@]}"; do
  for p in "${phases[@]}"; do
    [[ $p == idle ]] && continue
    sc=$(get "$c" "$p" server_cpu_us_per_msg) cc=$(get "$c" "$p" client_cpu_us_per_msg)
    if [[ $sc != - && $cc != - ]] && awk -v s="$sc" -v c="$cc" 'BEGIN { exit !(c >= s) }'; then
      echo "warning: $(title "$c") $p: the client used more CPU per message ($cc us) than the server ($sc us)"
      warned=1
    fi
    cp=$(get "$c" "$p" client_cpu_pct)
    if [[ $cp != - ]] && awk -v c="$cp" 'BEGIN { exit !(c >= 90) }'; then
      echo "warning: $(title "$c") $p: the client used ${cp} % of its core: it may be what limits the rate"
      warned=1
    fi
    be=$(get "$c" "$p" bench_exit max)
    if [[ $be != 0 ]]; then
      echo "warning: $(title "$c") $p: the bench exited with $be"
      warned=1
    fi
  done
  if ran rate; then
    note=$(rate_note "$c")
    if [[ -n $note ]]; then
      echo "warning: $(title "$c") rate: $RATE msgs/s not held: $note; its latency is queueing"
      warned=1
    fi
  fi
  if ran ord; then
    note=$(rate_note "$c" ord)
    if [[ -n $note ]]; then
      echo "warning: $(title "$c") ord: $ORDINARY_RATE msgs/s not held: $note"
      warned=1
    fi
  fi
  if [[ $IDLE -gt 0 ]]; then
    be=$(get "$c" idle bench_exit max)
    [[ $be == 0 ]] || { echo "warning: $(title "$c") idle: the bench exited with $be"; warned=1; }
  fi
done
[[ $warned == 0 ]] && echo "no warnings: every client cheaper than its server, every rate held"
exit 0
