# shellcheck shell=bash
# Shell functions shared by compare.sh, report.sh and cluster.sh (sourced, not run).
# The caller sets `tmp` (a directory for logs) and calls bench_cleanup from
# its EXIT trap: every process started here is then gone, whatever happened.
# Results go back in globals (server_pid, server_addr, server_status,
# run_status), read by the caller.
# shellcheck disable=SC2034,SC2154

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
