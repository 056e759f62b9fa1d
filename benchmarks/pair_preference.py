"""Which answer does each reward model prefer? Per run of a finished pairwise workdir, the share
of test pairs on which the weak model, the student and the ceiling prefer the text whose answer
is `--word` ("word"), and the first text ("first"), beside their accuracy and the share on
which the word's text is the right one.

  python benchmarks/pair_preference.py --config=configs/reward_model.py --workdir=/tmp/rm_p

A student at the share where `--word` is right, preferring it on (nearly) every pair, has
learnt the answer word, not the pair; the position of the text is balanced by the task.
"""
import argparse
import importlib.util
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from w2s_jax import replicates, stages  # noqa: E402


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--config", required=True, help="FILE[:VARIANT], as the workdir was run")
  p.add_argument("--workdir", required=True)
  p.add_argument("--word", default="positive")
  a = p.parse_args()
  path, _, variant = a.config.partition(":")
  spec = importlib.util.spec_from_file_location("cfg", os.path.join(ROOT, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  cfg = module.get_config(variant or "default")
  data = replicates.Data(cfg)
  test, tok = data.shared["test"], data.tokenizer
  # Does the first text of each pair end with the word? (an answer closes its text)
  first = np.array([a.word in tok.decode(row[:n[0], 0].tolist())[-4 * len(a.word):]
                    for row, n in zip(test.tokens, test.lengths)])
  right = np.where(first, test.labels == 1, test.labels == 0)
  print(f"test pairs: {len(test)}; the {a.word!r} answer is right on {right.mean():.3f}")
  store = stages.StageStore(a.workdir)
  runs = json.load(open(os.path.join(a.workdir, "results.json")))["runs"]
  print(f"{'seed':>4} {'gft':>5} " + " ".join(f"{r + ' word / first / acc':>30}"
                                             for r in ("weak", "student", "ceiling")))
  for r in sorted(runs, key=lambda r: (r["gft"], r["seed"])):
    cells = []
    for role in ("weak", "student", "ceiling"):
      arr = store.arrays("predict", r["predict_keys"][role])
      picks_first = arr["probs"].argmax(-1) == 1
      prefers = np.where(first, picks_first, ~picks_first).mean()
      cells.append(f"{prefers:.3f} / {picks_first.mean():.3f} / {arr['correct'].mean():.3f}")
    print(f"{r['seed']:>4} {str(r['gft']):>5} " + " ".join(f"{c:>30}" for c in cells))


if __name__ == "__main__":
  main()
