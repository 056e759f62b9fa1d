"""Export a trained stage as a Hugging Face folder that transformers loads:

  python -m w2s_jax.export WORKDIR/stages/train-KEY OUT_DIR [--tokenizer=file:tokenizer.json]

The body and the language-modelling head are exported (config.json + model.safetensors); the
classification head, which a causal LM has no place for, is saved beside them as
classifier_head.npy ([d_model, classes]).
"""
import argparse
import dataclasses
import json
import os

import jax
import numpy as np

from w2s_jax import sharding, train
from w2s_jax.models import ModelConfig, hf
from w2s_jax.stages import StageStore


def export_stage(stage_dir: str, out: str, tokenizer_file: str = "") -> ModelConfig:
  stage_dir = os.path.abspath(stage_dir.rstrip("/"))
  with open(os.path.join(stage_dir, "spec.json")) as f:
    spec = json.load(f)
  fields = {f.name for f in dataclasses.fields(ModelConfig)}
  mc = ModelConfig(**{k: v for k, v in spec["model"].items() if k in fields})
  mesh = sharding.make_mesh(1, -1, 1)
  num_classes = spec["model"].get("num_classes", spec.get("num_classes"))
  tr = train.Trainer(mc, num_classes, mesh, sharding.DEFAULT_RULES)
  kind, key = os.path.basename(stage_dir).split("-", 1)
  store = StageStore(os.path.dirname(os.path.dirname(stage_dir)))
  if not store.done(kind, key):
    raise FileNotFoundError(f"{stage_dir}: not a finished stage (no COMMIT)")
  params = store.params(kind, key, tr.abstract_params(), tr.param_shardings)
  hf.export(mc, params, out, tokenizer_file)
  np.save(os.path.join(out, "classifier_head.npy"), np.asarray(jax.device_get(params["cls_head"])))
  return mc


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("stage")
  p.add_argument("out")
  p.add_argument("--tokenizer", default="", help="a tokenizer.json to copy beside the weights")
  a = p.parse_args()
  mc = export_stage(a.stage, a.out, a.tokenizer)
  print(f"exported {mc.n_layers}-layer model to {a.out}")


if __name__ == "__main__":
  main()
