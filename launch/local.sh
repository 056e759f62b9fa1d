#!/usr/bin/env bash
# N local processes on this machine, each with D (fake CPU) devices, forming one mesh over
# loopback: multi-host development and tests without a pod.
#   launch/local.sh N D --config=configs/nlp.py:tiny --workdir=/tmp/w2s_mp
# Process 0 prints results. The first process to fail (a non-zero exit or a signal) fails the
# run: the others are stopped at once (TERM, then KILL after GRACE_S seconds), never waited on.
# A process that stops answering (SIGSTOP, a hang) is reported lost by its peers within
# W2S_PEER_TIMEOUT_S (default 60 s); they fail, and so it is stopped too.
set -uo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 NUM_PROCESSES DEVICES_PER_PROCESS MAIN_ARGS..." >&2
  exit 2
fi
n=$1; d=$2; shift 2
grace=${GRACE_S:-5}
port=${PORT:-$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
declare -A index  # pid -> process id, for the processes not yet reaped
for ((i = 0; i < n; i++)); do
  XLA_FLAGS="--xla_force_host_platform_device_count=$d" JAX_PLATFORMS=cpu \
    python -m w2s_jax.main --coordinator_address="127.0.0.1:$port" --num_processes="$n" \
    --process_id="$i" "$@" &
  index[$!]=$i
  echo "local.sh: process $i is pid $!" >&2
done

running() {  # exited but not yet reaped (a zombie) counts as stopped
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $state != Z* ]]
}

any_running() {
  local p
  for p in "${!index[@]}"; do running "$p" && return 0; done
  return 1
}

stop_all() {
  local p t
  for p in "${!index[@]}"; do
    kill -TERM "$p" 2>/dev/null
    kill -CONT "$p" 2>/dev/null  # a stopped process acts on no signal but KILL until resumed
  done
  for ((t = 0; t < grace * 10; t++)); do
    any_running || break
    sleep 0.1
  done
  for p in "${!index[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap 'echo "local.sh: interrupted; stopping every process" >&2; stop_all; exit 130' INT TERM

status=0
while ((${#index[@]} > 0)); do
  finished=""
  wait -n -p finished "${!index[@]}"
  rc=$?
  [ -n "$finished" ] || break
  i=${index[$finished]}
  unset "index[$finished]"
  if ((rc != 0)); then
    echo "local.sh: process $i (pid $finished) failed with exit status $rc; stopping the" \
      "${#index[@]} other(s)" >&2
    status=$rc
    stop_all
    break
  fi
done
exit $status
