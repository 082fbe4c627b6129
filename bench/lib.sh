# shellcheck shell=bash
# Shell functions shared by compare.sh, report.sh, cluster.sh and groups.sh
# (sourced, not run).
# The caller sets `tmp` (a directory for logs) and calls bench_cleanup from
# its EXIT trap: every process started here is then gone, whatever happened.
# Results go back in globals (server_pid, server_addr, server_status,
# run_status), read by the caller.
# shellcheck disable=SC2034,SC2154

# bench_binaries SCRIPT ARGS...: the usage of a script that takes exactly
# SWITCHBOARD_BINARY BENCH_BINARY; sets server_bin and bench_bin, or exits 2.
bench_binaries() {
  local script=$1 b
  shift
  if [[ $# -ne 2 ]]; then
    echo "usage: $script SWITCHBOARD_BINARY BENCH_BINARY" >&2
    exit 2
  fi
  server_bin=$1
  bench_bin=$2
  for b in "$server_bin" "$bench_bin"; do
    [[ -x $b ]] || { echo "$script: $b is not an executable" >&2; exit 2; }
  done
}

_bench_pids=()  # every server and bench process started, for bench_cleanup

# Kills whatever is still running of what was started here. A bench runs
# under `timeout`, which puts itself and the bench in a process group of
# their own (its pid): the group is killed, or the bench would outlive it.
# The other processes lead no group, so for them the group kill does nothing.
bench_cleanup() {
  local pid
  for pid in "${_bench_pids[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  done
  for pid in "${_bench_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  _bench_pids=()
}

# _forget PID: PID was waited for; never signal it again (it may be reused).
_forget() {
  local keep=() pid
  for pid in "${_bench_pids[@]}"; do
    [[ $pid == "$1" ]] || keep+=("$pid")
  done
  _bench_pids=("${keep[@]}")
}

# pin_cmd CPUS: sets the array `pin` to the command prefix that runs a
# program on CPUS ("0", "1", "0,1"...), or to nothing for "" or without taskset.
pin_cmd() {
  pin=()
  if [[ -n $1 ]] && command -v taskset >/dev/null 2>&1; then pin=(taskset -c "$1"); fi
}

# start_switchboard NAME CPUS BINARY [SERVER OPTIONS...]: starts Switchboard
# on a free port of 127.0.0.1 and waits (at most 20 s) for its
# `listening on` line. Sets server_pid and server_addr; returns 1 if it did not start.
start_switchboard() {
  local name=$1 cpus=$2 bin=$3
  shift 3
  local pin
  pin_cmd "$cpus"
  # Emptied here, not only by the redirection in the child: an old file's
  # `listening on` line must never be taken for this server's.
  : >"$tmp/$name.server.out"
  "${pin[@]}" "$bin" --listen 127.0.0.1:0 "$@" >>"$tmp/$name.server.out" 2>"$tmp/$name.server.err" &
  server_pid=$!
  _bench_pids+=("$server_pid")
  server_addr=
  local _
  for _ in $(seq 1 400); do
    server_addr=$(sed -n 's/^listening on //p' "$tmp/$name.server.out")
    [[ -n $server_addr ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "the $name server did not start; its stderr:" >&2
  tail -5 "$tmp/$name.server.err" >&2
  return 1
}

# accepts PORT: whether something accepts TCP connections on 127.0.0.1:PORT.
accepts() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_seed NAME CPUS BINARY: starts the seed design's Go server
# (`BINARY -addr 127.0.0.1:PORT -fixed`, GOMAXPROCS=1) on a free port and
# waits (at most 20 s) until it accepts connections. It prints nothing when
# ready, so the port is chosen here: a random one below the ephemeral range
# that nothing answers on, again if the server could not take it.
# Sets server_pid and server_addr; returns 1 if it did not start.
start_seed() {
  local name=$1 cpus=$2 bin=$3
  local pin port _ _attempt
  pin_cmd "$cpus"
  for _attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 12000))
    accepts "$port" && continue
    GOMAXPROCS=1 "${pin[@]}" "$bin" -addr "127.0.0.1:$port" -fixed \
      >"$tmp/$name.server.out" 2>"$tmp/$name.server.err" &
    server_pid=$!
    _bench_pids+=("$server_pid")
    server_addr="127.0.0.1:$port"
    for _ in $(seq 1 400); do
      kill -0 "$server_pid" 2>/dev/null || break
      accepts "$port" && return 0
      sleep 0.05
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    _forget "$server_pid"
  done
  echo "the $name server did not start; its output:" >&2
  tail -5 "$tmp/$name.server.out" "$tmp/$name.server.err" >&2
  return 1
}

# stop_server: SIGTERM to server_pid, SIGKILL if it is still there after
# 15 s. Sets server_status to its exit status.
stop_server() {
  server_status=0
  kill -TERM "$server_pid" 2>/dev/null || true
  local _
  for _ in $(seq 1 300); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "server $server_pid still running 15 s after SIGTERM: killed" >&2
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" 2>/dev/null || server_status=$?
  _forget "$server_pid"
}

# run_bounded SECONDS OUT ERR COMMAND...: runs COMMAND with stdout to OUT and
# stderr to ERR, killed after SECONDS (then 5 s more for SIGKILL). Waits in a
# way a signal to the script interrupts. Sets run_status to its exit status
# (124: timed out).
run_bounded() {
  local limit=$1 out=$2 err=$3
  shift 3
  timeout -k 5 "$limit" "$@" >"$out" 2>"$err" &
  local pid=$!
  _bench_pids+=("$pid")
  run_status=0
  wait "$pid" || run_status=$?
  _forget "$pid"
}

# start_redis NAME: a private redis-server for a cluster run, never a system
# service: no persistence, its directory under $tmp, on a random free port of
# 127.0.0.1 (Redis has no port 0 that picks one: `--port 0` turns TCP off),
# again on another port if that one was taken meanwhile. Ready once it
# answers PING and says it is this process (INFO's process_id), so that a
# Redis someone else started on that port is never measured.
# Sets redis_pid and redis_port; returns 1 if it did not start.
start_redis() {
  local name=$1 port _ _attempt
  local dir=$tmp/$name.redis
  mkdir -p "$dir"
  for _attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 12000))
    accepts "$port" && continue
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$dir" --daemonize no --logfile "$tmp/$name.redis.log" &
    redis_pid=$!
    _bench_pids+=("$redis_pid")
    redis_port=$port
    for _ in $(seq 1 200); do
      kill -0 "$redis_pid" 2>/dev/null || break
      if [[ $(redis-cli -p "$port" INFO server 2>/dev/null | tr -d '\r' |
        sed -n 's/^process_id://p') == "$redis_pid" ]]; then
        return 0
      fi
      sleep 0.05
    done
    kill -KILL "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    _forget "$redis_pid"
  done
  echo "the $name redis-server did not start; its log:" >&2
  tail -5 "$tmp/$name.redis.log" >&2
  return 1
}

# stop_redis: SIGTERM to redis_pid (without persistence it exits at once),
# SIGKILL if it is still there 10 s later.
stop_redis() {
  kill -TERM "$redis_pid" 2>/dev/null || true
  local _
  for _ in $(seq 1 200); do
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  _forget "$redis_pid"
}

# ---------------------------------------------------------------------------
# The table, for report.sh and cluster.sh: each run wrote its key=value
# results to $tmp/COL.PHASE.REP.kv; the caller sets `cols` (its columns),
# `width` (of a value) and may set `label_width` (of a row's label).

# has COL: COL is one of the columns run.
has() { local c; for c in "${cols[@]}"; do [[ $c == "$1" ]] && return 0; done; return 1; }

# get COL PHASE KEY [max]: the value over the runs of PHASE: the median of
# numbers (the largest with "max"), else the first run's value; "-" if none.
get() {
  local f v vals=()
  for f in "$tmp/$1.$2".*.kv; do
    [[ -f $f ]] || continue
    v=$(sed -n "s/^$3=//p" "$f" | tail -1)
    [[ -n $v ]] && vals+=("$v")
  done
  if [[ ${#vals[@]} -eq 0 ]]; then
    echo -
    return
  fi
  if printf "%s\n" "${vals[@]}" | grep -qvE '^-?[0-9]+(\.[0-9]+)?$'; then
    echo "${vals[0]}"  # not all numbers: the first run's
    return
  fi
  printf "%s\n" "${vals[@]}" | sort -g | awk -v how="${4:-median}" '
    { v[NR] = $0 }
    END {
      if (how == "max") print v[NR]
      else if (NR % 2) print v[(NR + 1) / 2]
      else print (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

# calc EXPR A B...: awk arithmetic on numbers; "-" if any is missing.
calc() {
  local expr=$1
  shift
  awk -v e="$expr" -v args="$*" 'BEGIN {
    n = split(args, a, " ")
    for (i = 1; i <= n; i++) if (a[i] == "-" || a[i] == "" || a[i] == "unreadable") { print "-"; exit }
    if (e == "ratio") { if (a[2] + 0 == 0) print "-"; else printf "%.2f\n", a[1] / a[2]; exit }
    if (e == "kib")   { printf "%.2f\n", a[1] / 1024; exit }
    if (e == "ms")    { printf "%.2f\n", a[1] / 1000; exit }
    if (e == "int")   { printf "%.0f\n", a[1]; exit }
    if (e == "sum")   { s = 0; for (i = 1; i <= n; i++) s += a[i]; printf "%.2f\n", s; exit }
    if (e == "f2")    { printf "%.2f\n", a[1]; exit }
    if (e == "f3")    { printf "%.3f\n", a[1]; exit }
  }'
}

# row LABEL VALUE...: one line of the table.
row() {
  local label=$1 v
  shift
  printf "%-${label_width:-40}s" "$label"
  for v in "$@"; do printf " %${width}s" "$v"; done
  printf "\n"
}

# checks_cell COL PHASE: lost/dup/reordered/misrouted, or the failure.
checks_cell() {
  local c=$1 p=$2
  if [[ $(get "$c" "$p" server_start) == failed ]]; then echo "no server"; return; fi
  echo "$(get "$c" "$p" lost max)/$(get "$c" "$p" duplicated max)/$(get "$c" "$p" reordered max)/$(get "$c" "$p" misrouted max)"
}

# goal WHAT MEASURED OP TARGET [NOTE]: one line under the table, with
# "met" or "NOT met".
goal() {
  local what=$1 measured=$2 op=$3 target=$4 note=${5:-} met
  if [[ $measured == - ]]; then
    met="not measured"
  else
    met=$(awk -v m="$measured" -v t="$target" -v op="$op" 'BEGIN {
      ok = (op == "<=") ? (m + 0 <= t + 0) : (m + 0 >= t + 0); print ok ? "met" : "NOT met" }')
  fi
  [[ -n $note ]] && met="$met ($note)"
  printf "%-56s %10s %3s %-6s %s\n" "$what" "$measured" "$op" "$target" "$met"
}
