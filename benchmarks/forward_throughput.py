"""Forward throughput of a pretrained model, w2s_jax beside transformers (PyTorch) on the same rows:
feature extraction (the last real token's hidden state: what probes read) and greedy decoding.
Prints one table.

  python benchmarks/forward_throughput.py [--model gguf:smollm2-135m] [--rows 256] [--batch 64]
      [--new_tokens 8] [--max_len 64] [--threads 2] [--compile]

Rows are VADER's rated sentences (offline) in the model's tokenizer, cut to `max_len`
tokens. Both sides get the same weights (w2s_jax's, exported to a transformers folder), the same
length-sorted batches and fp32. w2s_jax pads each batch to its bucket (right padding, one program
per bucket); transformers gets each batch padded to its own longest row (right padding for
features, left padding for `generate`, as it requires). Compilation is timed apart: the first
pass over the rows warms every bucket, the second is timed. Decoded tokens are compared (greedy:
they should agree where fp32 round-off does not flip a near tie).
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from w2s_jax import config as config_lib, models, sharding, train  # noqa: E402
from w2s_jax.data import dataset as data_lib  # noqa: E402
from w2s_jax.data.tokenizers import get_tokenizer  # noqa: E402
from w2s_jax.models import hf as hf_lib  # noqa: E402

BUCKETS = (16, 32, 48, 64, 96, 128)


def rows(tokenizer, n, max_len):
  cfg = config_lib.defaults().task
  cfg.name, cfg.n_train, cfg.n_test = "vader-sentiment", n, 1
  splits = data_lib.load_splits(cfg, tokenizer, max_len, 0)
  ds = splits.a if len(splits.a) >= n else data_lib.Dataset(
      np.concatenate([splits.a.tokens, splits.b.tokens]),
      np.concatenate([splits.a.lengths, splits.b.lengths]),
      np.concatenate([splits.a.labels, splits.b.labels]))
  return ds.take(np.arange(min(n, len(ds))))


def timed(fn, repeats=2):
  """(seconds of the first call, compiles included; seconds of the best later call)."""
  t0 = time.time()
  out = fn()
  first = time.time() - t0
  best = float("inf")
  for _ in range(repeats):
    t0 = time.time()
    out = fn()
    best = min(best, time.time() - t0)
  return first, best, out


def torch_side(folder, ds, batch, new_tokens, threads, compile_):
  import torch  # noqa: PLC0415
  import transformers  # noqa: PLC0415
  torch.set_num_threads(threads)
  model = transformers.AutoModelForCausalLM.from_pretrained(
      folder, dtype=torch.float32, attn_implementation="sdpa").eval()
  body = torch.compile(model.model) if compile_ else model.model
  order = np.argsort(ds.lengths, kind="stable")
  batches = [order[i:i + batch] for i in range(0, len(order), batch)]

  def features():
    out = np.zeros((len(ds), model.config.hidden_size), np.float32)
    with torch.inference_mode():
      for idx in batches:
        n = int(ds.lengths[idx].max())
        tokens = torch.from_numpy(ds.tokens[idx, :n].astype(np.int64))
        mask = torch.from_numpy((np.arange(n)[None] < ds.lengths[idx, None]).astype(np.int64))
        h = body(input_ids=tokens, attention_mask=mask).last_hidden_state
        out[idx] = h[torch.arange(len(idx)), torch.from_numpy(ds.lengths[idx] - 1)].numpy()
    return out

  def generate():
    out = np.zeros((len(ds), new_tokens), np.int64)
    with torch.inference_mode():
      for idx in batches:
        n = int(ds.lengths[idx].max())
        tokens = np.zeros((len(idx), n), np.int64)
        mask = np.zeros((len(idx), n), np.int64)
        for r, i in enumerate(idx):  # left padding: generate appends after the last column
          m = int(ds.lengths[i])
          tokens[r, n - m:], mask[r, n - m:] = ds.tokens[i, :m], 1
        gen = model.generate(input_ids=torch.from_numpy(tokens),
                             attention_mask=torch.from_numpy(mask), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
        out[idx] = gen[:, n:].numpy()
    return out

  return timed(features), timed(generate, 1)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--model", default="gguf:smollm2-135m")
  p.add_argument("--rows", type=int, default=256)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--new_tokens", type=int, default=8)
  p.add_argument("--max_len", type=int, default=64)
  p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
  p.add_argument("--compile", action="store_true", help="also torch.compile the body")
  a = p.parse_args()

  tokenizer = get_tokenizer(a.model)
  ds = rows(tokenizer, a.rows, a.max_len)
  mesh = sharding.make_mesh(1, -1, 1)
  spec = config_lib.defaults().strong
  spec.init, spec.size = a.model, "auto"
  mc = models.from_spec(spec, tokenizer.vocab_size)
  tr = train.Trainer(mc, 2, mesh, sharding.DEFAULT_RULES)
  params = models.initial_params(a.model, tr, 0)
  buckets = tuple(b for b in BUCKETS if b < a.max_len) + (a.max_len,)
  print(f"{a.model}: {models.param_count(mc):,} parameters; {len(ds)} rows, mean length "
        f"{ds.lengths.mean():.1f} tokens (max {a.max_len}); batch {a.batch}; jax "
        f"{jax.__version__} on {jax.devices()[0].platform}")
  jf = timed(lambda: tr.predict(params, ds, a.batch, buckets, what="features"))
  jg = timed(lambda: tr.generate(params, ds, a.new_tokens, a.batch, buckets), 1)
  with tempfile.TemporaryDirectory() as folder:
    hf_lib.export(mc, jax.device_get(params), folder)
    results = {"w2s_jax": (jf, jg)}
    results["torch eager"] = torch_side(folder, ds, a.batch, a.new_tokens, a.threads, False)
    if a.compile:
      results["torch.compile"] = torch_side(folder, ds, a.batch, a.new_tokens, a.threads, True)
  ref_f, ref_g = results["w2s_jax"][0][2], results["w2s_jax"][1][2]
  print(f"{'what':>9} {'implementation':>14} {'rows/s':>8} {'x eager':>8} {'first pass s':>12} "
        f"{'agreement':>10}")
  for what, i in (("features", 0), ("generate", 1)):
    eager = results["torch eager"][i][1]
    for name, r in results.items():
      first, best, out = r[i]
      if i == 0:
        err = np.max(np.abs(out - ref_f)) / max(1e-6, np.max(np.abs(ref_f)))
        agree = f"{err:.1e} rel"
      else:
        agree = f"{np.mean(out == ref_g):.3f} tok"
      print(f"{what:>9} {name:>14} {len(ds) / best:8.1f} {eager / best:8.2f} {first:12.1f} "
            f"{agree:>10}")


if __name__ == "__main__":
  main()
