#!/usr/bin/env bash
# The cluster benchmark: two Switchboard nodes on one private Redis, senders
# on node A, receivers on node B, so that every message crosses nodes
# (PROTOCOL.md section 7), next to the same load on one node with the memory
# and with the SQLite store, in the same run.
#
#   bench/cluster.sh SWITCHBOARD_BINARY BENCH_BINARY
#   REPEAT=3 bench/cluster.sh ...          # medians of 3 runs
#
# Columns, each on fresh processes for every run (`--threads 1` everywhere):
#   cluster  redis-server --port P --save "" --appendonly no (its own, killed
#            by pid at the end), nodes a and b with --store redis://127.0.0.1:P;
#            the bench's senders on a (--url), its receivers on b (--receiver-url)
#   memory   one node, --store memory:, senders and receivers on it
#   sqlite   one node, --store sqlite:TMP/x.db (the default store, --sync normal)
# Phases, both with receipts (every SEND has an id; a window slot is freed by
# the delivery and the receipt):
#   tput     as fast as the window allows
#   rate     RATE messages/s offered over all pairs: delivery and receipt p50/p99
# Nothing is pinned: two nodes, Redis and the client share the machine's CPUs
# as the scheduler decides; the waiting rows say how much each was held back.
#
# For the cluster the script also reads, before and after each bench run
# (the whole run: warm-up, measured time and drain, divided by every message
# delivered in it), Redis's `INFO commandstats` and `INFO stats` and the
# nodes' /metrics (switchboard_redis_round_trips_total and the like). Redis
# counts the commands a script runs (redis.call) in commandstats as well as
# the script itself, and a script's usec includes theirs.
#
# Settings (environment): PAIRS (50), WINDOW (128), SIZE (64), DURATION (5),
# WARMUP (1), RATE (20000), REPEAT (1), COLUMNS ("cluster memory sqlite"),
# PHASES ("tput rate"), TOP (12: commands shown), SERVER_ARGS (added to every
# node), KEEP_TMP=1 (keeps every run's key=value output and logs).
# Needs redis-server and redis-cli (Debian's redis-server package) and curl.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
bench_binaries "$0" "$@"
for c in redis-server redis-cli curl; do
  command -v "$c" >/dev/null 2>&1 || { echo "$0: needs $c" >&2; exit 2; }
done

PAIRS=${PAIRS:-50}
WINDOW=${WINDOW:-128}
SIZE=${SIZE:-64}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
RATE=${RATE:-20000}
REPEAT=${REPEAT:-1}
COLUMNS=${COLUMNS:-cluster memory sqlite}
PHASES=${PHASES:-tput rate}
TOP=${TOP:-12}
read -ra server_args <<<"${SERVER_ARGS:-}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-cluster.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
on_exit() {
  bench_cleanup
  if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

cols=()
for c in $COLUMNS; do
  case $c in
    cluster | memory | sqlite) cols+=("$c") ;;
    *) echo "$0: unknown column $c in COLUMNS" >&2; exit 2 ;;
  esac
done
[[ ${#cols[@]} -gt 0 ]] || { echo "$0: nothing to run" >&2; exit 2; }
phases=()
for p in $PHASES; do
  case $p in
    tput | rate) phases+=("$p") ;;
    *) echo "$0: unknown phase $p in PHASES" >&2; exit 2 ;;
  esac
done
[[ ${#phases[@]} -gt 0 ]] || { echo "$0: nothing to run" >&2; exit 2; }

title() {
  case $1 in
    cluster) echo "cluster A>B" ;;
    memory) echo "memory 1 node" ;;
    sqlite) echo "sqlite 1 node" ;;
  esac
}

# ---------------------------------------------------------------------------
# What Redis and the nodes count, before and after a run.

# commandstats FILE: one line per command, "name calls usec", from Redis's
# INFO commandstats (cmdstat_evalsha:calls=3,usec=40,... -> evalsha 3 40).
commandstats() {
  redis-cli -p "$redis_port" INFO commandstats | tr -d '\r' | awk -F'[:,=]' '
    /^cmdstat_/ {
      name = substr($1, 9); calls = 0; usec = 0
      gsub(/\|/, "-", name)  # subcommands: cmdstat_client|setname -> client-setname
      for (i = 2; i < NF; i += 2) {
        if ($i == "calls") calls = $(i + 1)
        if ($i == "usec") usec = $(i + 1)
      }
      print name, calls, usec
    }' >"$1"
}

# redis_stat FIELD: a field of INFO stats (total_net_input_bytes...).
redis_stat() {
  redis-cli -p "$redis_port" INFO stats | tr -d '\r' | sed -n "s/^$1://p"
}

# metric ADDR NAME: the value of series NAME (no labels) in ADDR's /metrics;
# empty if the node does not have it.
metric() {
  curl -s --max-time 5 "http://$1/metrics" | awk -v n="$2" '$1 == n { print $2; exit }'
}

# snapshot_cluster WHEN: what the per-message figures are differences of,
# into $snap.WHEN.*.
snapshot_cluster() {
  local when=$1 node addr m
  commandstats "$snap.$when.cmd"
  {
    echo "net_in $(redis_stat total_net_input_bytes)"
    echo "net_out $(redis_stat total_net_output_bytes)"
    for node in a b; do
      addr=a_addr
      [[ $node == b ]] && addr=b_addr
      for m in switchboard_redis_round_trips_total switchboard_redis_publishes_received_total \
        switchboard_redis_round_trip_seconds_sum switchboard_redis_round_trip_seconds_count \
        switchboard_redis_reconnects_total; do
        echo "$node.$m $(metric "${!addr}" "$m")"
      done
    done
  } >"$snap.$when.misc"
}

# cluster_kv DELIVERED: key=value lines of the per-message figures, from the
# two snapshots. Commands: redis_cmds_per_msg (all, those run by scripts
# included), redis_cmd_NAME_per_msg and redis_cmd_NAME_us_per_msg (calls and
# Redis's own time per delivered message), redis_cmd_order (the names by
# calls, most first).
cluster_kv() {
  local delivered=$1
  awk -v d="$delivered" '
    FNR == NR { c0[$1] = $2; u0[$1] = $3; next }
    {
      if ($1 == "info") next   # the snapshots themselves
      calls = $2 - c0[$1]; usec = $3 - u0[$1]
      if (calls <= 0) next
      total += calls
      printf "redis_cmd_%s_per_msg=%.4f\n", $1, calls / d
      printf "redis_cmd_%s_us_per_msg=%.3f\n", $1, usec / d
      order[++n] = $1; cnt[$1] = calls
    }
    END {
      printf "redis_cmds_per_msg=%.4f\n", total / d
      printf "redis_evalsha_per_msg=%.4f\n", ("evalsha" in cnt ? cnt["evalsha"] : 0) / d
      # Only the append script runs INCR: the other scripts (session opens,
      # lease renewals, and cursor moves before they became ZADD GT) are
      # the EVALSHAs beyond it.
      if ("evalsha" in cnt && "incr" in cnt)
        printf "redis_evalsha_not_append_per_msg=%.4f\n", (cnt["evalsha"] - cnt["incr"]) / d
      # the names by calls, most first (insertion sort: a few dozen at most)
      for (i = 2; i <= n; i++) {
        v = order[i]
        for (j = i - 1; j >= 1 && cnt[order[j]] < cnt[v]; j--) order[j + 1] = order[j]
        order[j + 1] = v
      }
      s = ""
      for (i = 1; i <= n; i++) s = s (i > 1 ? "," : "") order[i]
      print "redis_cmd_order=" s
    }' "$snap.before.cmd" "$snap.after.cmd"
  awk -v d="$delivered" '
    FNR == NR { b[$1] = $2; next }
    { a[$1] = $2 }
    END {
      if (a["net_in"] != "" && b["net_in"] != "") {
        printf "redis_net_in_bytes_per_msg=%.1f\n", (a["net_in"] - b["net_in"]) / d
        printf "redis_net_out_bytes_per_msg=%.1f\n", (a["net_out"] - b["net_out"]) / d
      }
      split("a b", nodes, " ")
      for (i = 1; i <= 2; i++) {
        n = nodes[i]
        k = n ".switchboard_redis_round_trips_total"
        if (a[k] == "" || b[k] == "") continue
        rt = a[k] - b[k]
        printf "round_trips_%s_per_msg=%.4f\n", n, rt / d
        if (rt > 0) printf "msgs_per_round_trip_%s=%.1f\n", n, d / rt
        k = n ".switchboard_redis_publishes_received_total"
        if (a[k] != "" && b[k] != "") printf "publishes_received_%s_per_msg=%.4f\n", n, (a[k] - b[k]) / d
        s = n ".switchboard_redis_round_trip_seconds_sum"; c = n ".switchboard_redis_round_trip_seconds_count"
        if (a[s] != "" && b[s] != "" && a[c] - b[c] > 0)
          printf "round_trip_mean_ms_%s=%.3f\n", n, (a[s] - b[s]) / (a[c] - b[c]) * 1000
        k = n ".switchboard_redis_reconnects_total"
        if (a[k] != "" && b[k] != "") printf "redis_reconnects_%s=%d\n", n, a[k] - b[k]
      }
    }' "$snap.before.misc" "$snap.after.misc"
}

# ---------------------------------------------------------------------------
# Runs.

# start_node NAME: one Switchboard node; sets server_pid and server_addr.
start_node() {
  start_switchboard "$1" "" "$server_bin" --threads 1 "${@:2}" "${server_args[@]}"
}

# measure COL PHASE REP: one bench run; key=value results in $tmp/COL.PHASE.REP.kv.
measure() {
  local col=$1 phase=$2 name=$1.$2.$3
  local kv=$tmp/$name.kv
  snap=$tmp/$name.snap
  local args=(--pairs "$PAIRS" --window "$WINDOW" --size "$SIZE" --duration "$DURATION"
    --warmup "$WARMUP" --drain 5 --receipts --format kv)
  [[ $phase == rate ]] && args+=(--rate "$RATE")
  local limit
  limit=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 60 }')
  local targets=() pids=()
  case $col in
    cluster)
      if ! start_redis "$name"; then
        echo "server_start=failed" >"$kv"
        return
      fi
      local store=redis://127.0.0.1:$redis_port
      if ! start_node "$name.a" --store "$store" --node-id a; then
        echo "server_start=failed" >"$kv"
        stop_redis
        return
      fi
      a_pid=$server_pid a_addr=$server_addr
      if ! start_node "$name.b" --store "$store" --node-id b; then
        echo "server_start=failed" >"$kv"
        server_pid=$a_pid
        stop_server
        stop_redis
        return
      fi
      b_pid=$server_pid b_addr=$server_addr
      targets=(--url "$a_addr" --receiver-url "$b_addr")
      pids=(--pid "$a_pid" --pid2 "$b_pid" --redis-pid "$redis_pid")
      echo "== $phase: cluster, redis pid $redis_pid on 127.0.0.1:$redis_port," \
        "node a pid $a_pid on $a_addr (senders), node b pid $b_pid on $b_addr (receivers)" >&2
      snapshot_cluster before
      ;;
    memory | sqlite)
      local store=memory:
      [[ $col == sqlite ]] && store=sqlite:$tmp/$name.db
      if ! start_node "$name" --store "$store"; then
        echo "server_start=failed" >"$kv"
        return
      fi
      targets=(--url "$server_addr")
      pids=(--pid "$server_pid")
      echo "== $phase: $(title "$col"), pid $server_pid on $server_addr" >&2
      ;;
  esac
  run_bounded "$limit" "$kv" "$tmp/$name.bench.err" \
    "$bench_bin" "${targets[@]}" "${pids[@]}" "${args[@]}"
  if [[ $run_status -ne 0 ]]; then
    echo "   the bench exited with $run_status$([[ $run_status -eq 124 ]] && echo ' (timed out)'):" >&2
    tail -3 "$tmp/$name.bench.err" >&2
  fi
  echo "bench_exit=$run_status" >>"$kv"
  # What else ran meanwhile: the machine's busy time less the processes measured.
  local other
  other=$(awk -F= '
    { v[$1] = $2 }
    END {
      if (v["machine_busy_pct"] == "") exit
      printf "other_work_pct=%.0f\n", v["machine_busy_pct"] - v["server_cpu_pct"] - v["server2_cpu_pct"] \
        - v["redis_cpu_pct"] - v["client_cpu_pct"]
    }' "$kv")
  [[ -n $other ]] && echo "$other" >>"$kv"
  local status=0
  if [[ $col == cluster ]]; then
    snapshot_cluster after
    local delivered
    delivered=$(sed -n 's/^delivered=//p' "$kv" | tail -1)
    [[ -n $delivered && $delivered != 0 ]] && cluster_kv "$delivered" >>"$kv"
    server_pid=$a_pid
    stop_server
    status=$server_status
    server_pid=$b_pid
    stop_server
    [[ $server_status -ne 0 ]] && status=$server_status
    stop_redis
  else
    stop_server
    status=$server_status
  fi
  if [[ $status -ne 0 ]]; then
    echo "   a node exited with $status after SIGTERM; see $tmp/$name*.server.err (KEEP_TMP=1)" >&2
  fi
  echo "server_exit=$status" >>"$kv"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for phase in "${phases[@]}"; do
  for ((r = 1; r <= REPEAT; r++)); do
    for col in "${cols[@]}"; do
      measure "$col" "$phase" "$r"
    done
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------
# The table (get, calc, row, goal...: lib.sh).

width=14
label_width=46

ratio_cols=()
if has cluster; then
  has memory && ratio_cols+=(memory)
  has sqlite && ratio_cols+=(sqlite)
fi

# total COL PHASE: the CPU of every server-side process per message (the
# node or both nodes, and Redis).
total_cpu() {
  if [[ $1 == cluster ]]; then
    calc sum "$(get "$1" "$2" server_cpu_us_per_msg)" "$(get "$1" "$2" server2_cpu_us_per_msg)" \
      "$(get "$1" "$2" redis_cpu_us_per_msg)"
  else
    calc f2 "$(get "$1" "$2" server_cpu_us_per_msg)"
  fi
}

# A row of one key per column, through calc UNIT ("" as is), with the ratios
# cluster / each one-node column when RATIO is "ratio".
key_row() {  # LABEL PHASE KEY [ratio] [UNIT]
  local label=$1 phase=$2 key=$3 ratio=${4:-} unit=${5:-} vals=() c v
  for c in "${cols[@]}"; do
    v=$(get "$c" "$phase" "$key")
    [[ -n $unit ]] && v=$(calc "$unit" "$v")
    vals+=("$v")
  done
  for c in "${ratio_cols[@]}"; do
    if [[ $ratio == ratio ]]; then
      vals+=("$(calc ratio "$(get cluster "$phase" "$key")" "$(get "$c" "$phase" "$key")")")
    else
      vals+=("")
    fi
  done
  row "$label" "${vals[@]}"
}

# A row of the cluster column only (Redis and /metrics figures).
cluster_row() {  # LABEL PHASE KEY [UNIT]
  local v
  has cluster || return 0
  v=$(get cluster "$2" "$3")
  [[ -n ${4:-} ]] && v=$(calc "$4" "$v")
  local vals=() c
  for c in "${cols[@]}"; do
    if [[ $c == cluster ]]; then vals+=("$v"); else vals+=(""); fi
  done
  for c in "${ratio_cols[@]}"; do vals+=(""); done
  row "$1" "${vals[@]}"
}

# cell_of COL PHASE KEY...: the values of KEYs in one cell, "a/b/c"; for a
# one-node column only the first.
cell_of() {
  local c=$1 p=$2 k out=
  shift 2
  if [[ $c != cluster ]]; then
    get "$c" "$p" "$1"
    return
  fi
  for k in "$@"; do out+="${out:+/}$(get "$c" "$p" "$k")"; done
  echo "$out"
}

# A row of cells built by cell_of, nothing in the ratio columns.
cells_row() {  # LABEL PHASE KEY...
  local label=$1 p=$2 vals=() c
  shift 2
  for c in "${cols[@]}"; do vals+=("$(cell_of "$c" "$p" "$@")"); done
  for c in "${ratio_cols[@]}"; do vals+=(""); done
  row "$label" "${vals[@]}"
}

phase_rows() {  # PHASE
  local p=$1 c vals
  key_row "  delivered msgs/s" "$p" msgs_per_s ratio
  if [[ $p == rate ]]; then
    key_row "  sent msgs/s (what the client offered)" "$p" sent_per_s
    key_row "  times a sender found its window full" "$p" rate_window_full
  fi
  key_row "  delivery p50 (ms)" "$p" delivery_p50_us ratio ms
  key_row "  delivery p99 (ms)" "$p" delivery_p99_us ratio ms
  key_row "  receipt p50 (ms)" "$p" receipt_p50_us ratio ms
  key_row "  receipt p99 (ms)" "$p" receipt_p99_us ratio ms
  key_row "  CPU us/msg: node A (or the one node)" "$p" server_cpu_us_per_msg
  key_row "  CPU us/msg: node B" "$p" server2_cpu_us_per_msg
  key_row "  CPU us/msg: Redis" "$p" redis_cpu_us_per_msg
  vals=()
  for c in "${cols[@]}"; do vals+=("$(total_cpu "$c" "$p")"); done
  for c in "${ratio_cols[@]}"; do
    vals+=("$(calc ratio "$(total_cpu cluster "$p")" "$(total_cpu "$c" "$p")")")
  done
  row "  CPU us/msg: server side (nodes + Redis)" "${vals[@]}"
  key_row "  CPU us/msg: client" "$p" client_cpu_us_per_msg
  cells_row "  % of a core: A/B/Redis (the node)" "$p" server_cpu_pct server2_cpu_pct redis_cpu_pct
  key_row "  % of a core: client" "$p" client_cpu_pct
  cells_row "  waiting for a CPU %: A/B/Redis (node)" "$p" server_wait_pct server2_wait_pct redis_wait_pct
  key_row "  waiting for a CPU %: client" "$p" client_wait_pct
  key_row "  machine busy, % of a CPU ($(nproc) CPUs)" "$p" machine_busy_pct
  key_row "    of which other work (not measured here)" "$p" other_work_pct
  key_row "  CPU stolen by the hypervisor, % of a CPU" "$p" machine_steal_pct
  if has cluster; then
    cluster_row "  Redis commands per msg (in scripts too)" "$p" redis_cmds_per_msg f2
    cluster_row "  EVALSHA calls per msg" "$p" redis_evalsha_per_msg f3
    cluster_row "    of which not the append (EVALSHA-INCR)" "$p" redis_evalsha_not_append_per_msg f3
    local order name i=0
    order=$(get cluster "$p" redis_cmd_order)
    [[ $order == - ]] && order=
    for name in ${order//,/ }; do
      [[ $i -ge $TOP ]] && break
      i=$((i + 1))
      vals=()
      for c in "${cols[@]}"; do
        if [[ $c == cluster ]]; then
          vals+=("$(calc f3 "$(get cluster "$p" "redis_cmd_${name}_per_msg")") / $(calc f2 \
            "$(get cluster "$p" "redis_cmd_${name}_us_per_msg")")")
        else
          vals+=("")
        fi
      done
      for c in "${ratio_cols[@]}"; do vals+=(""); done
      row "    $name: calls / Redis usec per msg" "${vals[@]}"
    done
    cluster_row "  Redis round trips per msg: node A" "$p" round_trips_a_per_msg f3
    cluster_row "  Redis round trips per msg: node B" "$p" round_trips_b_per_msg f3
    cluster_row "  msgs per round trip, node A (batch)" "$p" msgs_per_round_trip_a
    cluster_row "  mean Redis round trip, node A (ms)" "$p" round_trip_mean_ms_a
    cells_row "  pub/sub msgs received per msg: A/B" "$p" publishes_received_a_per_msg \
      publishes_received_b_per_msg
    cells_row "  Redis bytes in/out per msg" "$p" redis_net_in_bytes_per_msg \
      redis_net_out_bytes_per_msg
  fi
  vals=()
  for c in "${cols[@]}"; do vals+=("$(checks_cell "$c" "$p")"); done
  row "  lost/dup/reordered/misrouted" "${vals[@]}"
  vals=()
  for c in "${cols[@]}"; do
    vals+=("$(get "$c" "$p" seq_gaps max)/$(get "$c" "$p" receipt_seq_gaps max)")
  done
  row "  seq gaps / receipt seq gaps" "${vals[@]}"
}

header=()
for c in "${cols[@]}"; do header+=("$(title "$c")"); done
for c in "${ratio_cols[@]}"; do header+=("cluster/$c"); done

echo
echo "switchboard cluster report, $(date -u '+%Y-%m-%d %H:%M UTC'): $PAIRS pairs, window $WINDOW," \
  "$SIZE-byte content, receipts on, ${DURATION} s measured after ${WARMUP} s;"
[[ $REPEAT -gt 1 ]] && echo "medians of $REPEAT runs per column;"
echo "cluster: senders on node A, receivers on node B, one private redis-server; every node --threads 1;"
echo "nothing pinned. $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs;"
echo "load average $load_before before the runs, $load_after after (other work on the machine shares these CPUs)."
echo "Redis and /metrics figures: whole bench run (warm-up and drain included) / messages delivered in it."
echo
row "" "${header[@]}"
for p in "${phases[@]}"; do
  if [[ $p == tput ]]; then echo "throughput (as fast as the window allows)"; else echo "fixed rate: $RATE msgs/s offered"; fi
  phase_rows "$p"
done

# ---------------------------------------------------------------------------
# Against the goals of the cluster issue.

if has cluster; then
  echo
  echo "goals of the cluster issue (cluster column)"
  pg="tput"
  has_phase() { local x; for x in "${phases[@]}"; do [[ $x == "$1" ]] && return 0; done; return 1; }
  has_phase tput || pg=rate
  # The append script is the only one that runs INCR: one per stored message.
  goal "append scripts per relayed message ($pg)" \
    "$(calc f3 "$(get cluster "$pg" redis_cmd_incr_per_msg)")" "<=" 1.001
  goal "all EVALSHA calls per relayed message ($pg)" \
    "$(calc f3 "$(get cluster "$pg" redis_evalsha_per_msg)")" "<=" 1.01 \
    "the rest: the other scripts, see EVALSHA-INCR"
  goal "Redis round trips per message, node A ($pg)" \
    "$(calc f3 "$(get cluster "$pg" round_trips_a_per_msg)")" "<=" 1 \
    "one per batch: $(get cluster "$pg" msgs_per_round_trip_a) messages per round trip"
  if has_phase tput; then
    goal "delivered msgs/s across nodes, with receipts" "$(calc int "$(get cluster tput msgs_per_s)")" \
      ">=" 50000
  fi
  bad=0
  for p in "${phases[@]}"; do
    [[ $(checks_cell cluster "$p") == 0/0/0/0 ]] || bad=$((bad + 1))
  done
  goal "cluster phases losing, duplicating, reordering, misrouting" "$bad" "<=" 0
fi

# Warnings: what would make a figure above measure something else.
echo
warned=0
for c in "${cols[@]}"; do
  for p in "${phases[@]}"; do
    if [[ $(get "$c" "$p" server_start) == failed ]]; then
      echo "warning: $(title "$c") $p: a server did not start (KEEP_TMP=1 keeps its log)"
      warned=1
      continue
    fi
    be=$(get "$c" "$p" bench_exit max)
    if [[ $be != 0 ]]; then
      echo "warning: $(title "$c") $p: the bench exited with $be"
      warned=1
    fi
    se=$(get "$c" "$p" server_exit max)
    if [[ $se != 0 && $se != - ]]; then
      echo "warning: $(title "$c") $p: a node exited with $se after SIGTERM"
      warned=1
    fi
    cp=$(get "$c" "$p" client_cpu_pct)
    if [[ $cp != - ]] && awk -v c="$cp" 'BEGIN { exit !(c >= 90) }'; then
      echo "warning: $(title "$c") $p: the client used ${cp} % of a core: it may be what limits the rate"
      warned=1
    fi
    rc=$(get "$c" "$p" redis_reconnects_a)$(get "$c" "$p" redis_reconnects_b)
    if [[ $c == cluster && $rc != -- && $rc != 00 ]]; then
      echo "warning: cluster $p: a node reconnected to Redis during the run"
      warned=1
    fi
  done
  if [[ " ${phases[*]} " == *" rate "* ]]; then
    sent=$(get "$c" rate sent_per_s) full=$(get "$c" rate rate_window_full)
    if [[ $sent != - ]] && awk -v s="$sent" -v r="$RATE" 'BEGIN { exit !(s < 0.98 * r) }'; then
      if [[ $full != - && $full != 0 ]]; then
        why="the servers kept up with only $(calc int "$sent") msgs/s (senders found their windows full)"
      else
        why="the client offered only $(calc int "$sent") msgs/s"
      fi
      echo "warning: $(title "$c") rate: $RATE msgs/s not held: $why; its latency is queueing"
      warned=1
    elif [[ $full != - && $full != 0 ]]; then
      echo "warning: $(title "$c") rate: senders found their windows full $full times (median):" \
        "the servers fell behind at times, so the latency includes queueing"
      warned=1
    fi
  fi
done
[[ $warned == 0 ]] && echo "no warnings: every bench and node ended cleanly, every rate held"
exit 0
