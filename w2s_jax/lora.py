"""LoRA: low-rank adapters on chosen weight matrices of every layer; the base stays frozen.

For a target W (stacked over layers, its leading dims after `layers` the inputs), the effective
weight is W + (alpha / rank) * A @ B reshaped to W, with A [layers, d_in, rank] random and B
[layers, rank, d_out] zero, so training starts from the base model. Only A, B and the
classification head train (and carry optimizer state); `merge` folds the adapters into a plain
parameter dict for prediction, checkpoints of finished stages, and export.
"""
import math

import jax
import jax.numpy as jnp

# How many dimensions after "layers" are inputs, per weight name. Every family has the
# attention projections wq wk wv wo and w_in w_out; w_gate is the gate of Llama/Qwen's SwiGLU and
# Gemma's GeGLU (GPT-2 has none). Norms (Gemma's extra ones, Qwen3's q/k norms) are not targets.
IN_DIMS = {"wq": 1, "wk": 1, "wv": 1, "wo": 2, "w_in": 1, "w_gate": 1, "w_out": 1}


def init(blocks: dict, rank: int, targets, key) -> dict:
  """Adapters for `targets` given the (abstract or real) stacked block parameters."""
  missing = [t for t in targets if t not in blocks]
  if missing:
    raise ValueError(f"LoRA targets {missing}: this model has no such weight (its targets: "
                     f"{[n for n in IN_DIMS if n in blocks]})")
  out = {}
  for i, name in enumerate(targets):
    shape = blocks[name].shape
    layers, d_in = shape[0], math.prod(shape[1:1 + IN_DIMS[name]])
    d_out = math.prod(shape[1 + IN_DIMS[name]:])
    a = jax.random.normal(jax.random.fold_in(key, i), (layers, d_in, rank), jnp.float32)
    out[name] = {"a": a / math.sqrt(d_in), "b": jnp.zeros((layers, rank, d_out), jnp.float32)}
  return out


def merge(params: dict, adapters: dict, rank: int, alpha: float) -> dict:
  """`params` with every adapted weight replaced by W + (alpha / rank) A B."""
  blocks = dict(params["blocks"])
  for name, ab in adapters.items():
    delta = jnp.einsum("lir,lro->lio", ab["a"], ab["b"]) * (alpha / rank)
    blocks[name] = blocks[name] + delta.reshape(blocks[name].shape).astype(blocks[name].dtype)
  return dict(params, blocks=blocks)
