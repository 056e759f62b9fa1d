#!/usr/bin/env bash
# N local processes on this machine, each with D (fake CPU) devices, forming one mesh over
# loopback: multi-host development and tests without a pod.
#   launch/local.sh N D --config=configs/nlp.py:tiny --workdir=/tmp/w2s_mp
# Process 0 prints results; a failed process fails the whole run.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 NUM_PROCESSES DEVICES_PER_PROCESS MAIN_ARGS..." >&2
  exit 2
fi
n=$1; d=$2; shift 2
port=${PORT:-$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
pids=()
for ((i = 0; i < n; i++)); do
  XLA_FLAGS="--xla_force_host_platform_device_count=$d" JAX_PLATFORMS=cpu \
    python -m w2s_jax.main --coordinator_address="127.0.0.1:$port" --num_processes="$n" \
    --process_id="$i" "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit $status
