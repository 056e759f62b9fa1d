#!/usr/bin/env bash
# A TPU VM pod slice: create (preemptible, through a queued resource), copy the code, install,
# run on every worker. Every worker runs the same command; jax.distributed.initialize() finds the
# other hosts by itself on TPU VMs. The workdir must be shared by all hosts: a gs:// bucket.
#
#   PROJECT=my-proj ZONE=us-central2-b TYPE=v4-32 NAME=w2s WORKDIR=gs://my-bucket/w2s \
#   CONFIG=configs/nlp.py:tiny launch/tpu_pod.sh [create|copy|install|run|restart|delete]
#
# After a preemption the queued resource is recreated by `create`; `restart` reruns the same
# command: finished stages are skipped and the stage in progress resumes from its checkpoint.
set -euo pipefail
: "${PROJECT:?}" "${ZONE:?}" "${TYPE:?}" "${NAME:?}" "${WORKDIR:?}"
CONFIG=${CONFIG:-configs/nlp.py:tiny}
VERSION=${VERSION:-tpu-ubuntu2204-base}
ssh_all() { gcloud compute tpus tpu-vm ssh "$NAME" --project="$PROJECT" --zone="$ZONE" --worker=all --command="$1"; }
case "${1:-run}" in
  create)
    gcloud compute tpus queued-resources create "$NAME" --project="$PROJECT" --zone="$ZONE" \
      --node-id="$NAME" --accelerator-type="$TYPE" --runtime-version="$VERSION" --spot
    echo "waiting for $NAME to become ACTIVE"
    until gcloud compute tpus queued-resources describe "$NAME" --project="$PROJECT" \
        --zone="$ZONE" --format='value(state.state)' | grep -q ACTIVE; do sleep 30; done ;;
  copy)
    tar czf /tmp/w2s_jax.tgz --exclude=.git --exclude='*.egg-info' .
    gcloud compute tpus tpu-vm scp /tmp/w2s_jax.tgz "$NAME":~/ --project="$PROJECT" \
      --zone="$ZONE" --worker=all
    ssh_all "mkdir -p ~/w2s_jax && tar xzf ~/w2s_jax.tgz -C ~/w2s_jax" ;;
  install)
    ssh_all "cd ~/w2s_jax && pip install -q -e '.[tpu]'" ;;
  run|restart)
    ssh_all "cd ~/w2s_jax && python -m w2s_jax.main --config=$CONFIG --workdir=$WORKDIR ${EXTRA:-}" ;;
  delete)
    gcloud compute tpus queued-resources delete "$NAME" --project="$PROJECT" --zone="$ZONE" \
      --force --quiet ;;
  *) echo "unknown step $1" >&2; exit 2 ;;
esac
