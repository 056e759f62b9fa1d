"""Does a task's format give its label away? Two baselines that understand nothing are trained
on the task's ground truth (train split) and scored on its test split:

  bag of words   hashed word unigrams and bigrams, logistic regression
  length         the best threshold on the character or word count

A task where either reaches `--threshold` (0.9) accuracy is reported as leaking, with the reason.

  python -m w2s_jax.data.leak_check --config=configs/nlp.py:jsonl --config.task.name=sciq \\
      [--config.task.train_file=...] [--threshold=0.9] [--max_rows=4000]
"""
import re
import sys
import zlib

import numpy as np

from w2s_jax.data import tasks

DIM = 4096


def texts_and_labels(task_cfg, max_rows: int, seed: int = 0):
  task = tasks.get(task_cfg.name)
  if task.kind != "classification":
    raise ValueError(f"task {task_cfg.name!r} is {task.kind}: no single text to check")
  labels = task.labels(task_cfg)
  raw = task.load(task_cfg)
  rng = np.random.default_rng(seed)
  out = {}
  for split, rows in raw.items():
    rows = [rows[i] for i in rng.permutation(len(rows))[:max_rows]]
    pairs = [task.format(r, task_cfg, labels) for r in rows]
    out[split] = ([t for t, _ in pairs], np.array([y for _, y in pairs]))
  if "test" not in out:  # hold out a fifth
    texts, ys = out["train"]
    n = len(texts) // 5
    out = {"test": (texts[:n], ys[:n]), "train": (texts[n:], ys[n:])}
  return out


def bag_of_words(texts) -> np.ndarray:
  x = np.zeros((len(texts), DIM), np.float32)
  for i, text in enumerate(texts):
    words = re.findall(r"\w+|[^\w\s]", text.lower())
    for gram in words + [a + " " + b for a, b in zip(words, words[1:])]:
      x[i, zlib.crc32(gram.encode()) % DIM] += 1.0
  return np.log1p(x)


def logistic_regression(x, y, steps: int = 300, lr: float = 0.1, l2: float = 1e-4):
  """Binary or multi-class, full batch, Adam (jax)."""
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  import optax  # noqa: PLC0415
  c = int(y.max()) + 1
  params = {"w": jnp.zeros((x.shape[1], c)), "b": jnp.zeros((c,))}
  tx = optax.adam(lr)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt):
    def loss(p):
      logits = x @ p["w"] + p["b"]
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean() + l2 * jnp.sum(
          p["w"] ** 2)
    g = jax.grad(loss)(params)
    updates, opt = tx.update(g, opt)
    return optax.apply_updates(params, updates), opt

  for _ in range(steps):
    params, opt = step(params, opt)
  return lambda z: np.asarray(jnp.argmax(z @ params["w"] + params["b"], -1))


def length_baseline(train_texts, y_train, test_texts, y_test) -> float:
  """Best single threshold (and direction) on chars or words, chosen on train."""
  best_train, best_test = 0.0, 0.0
  for measure in (len, lambda t: len(t.split())):
    a = np.array([measure(t) for t in train_texts])
    b = np.array([measure(t) for t in test_texts])
    for cut in np.unique(a):
      for sign in (1, -1):
        acc = np.mean((sign * (a - cut) > 0) == y_train)
        if acc > best_train:
          best_train, best_test = acc, np.mean((sign * (b - cut) > 0) == y_test)
  return float(max(best_test, np.mean(y_test == np.bincount(y_train).argmax())))


def check(task_cfg, threshold: float = 0.9, max_rows: int = 4000) -> dict:
  data = texts_and_labels(task_cfg, max_rows)
  (tr_t, tr_y), (te_t, te_y) = data["train"], data["test"]
  predict = logistic_regression(bag_of_words(tr_t), tr_y)
  bow = float(np.mean(predict(bag_of_words(te_t)) == te_y))
  length = length_baseline(tr_t, tr_y, te_t, te_y) if set(np.unique(tr_y)) <= {0, 1} else 0.0
  reasons = [f"{name} baseline reaches {acc:.3f}" for name, acc in
             (("bag-of-words", bow), ("length", length)) if acc >= threshold]
  return {"task": task_cfg.name, "n_train": len(tr_t), "n_test": len(te_t),
          "bag_of_words_acc": bow, "length_acc": length, "leak": bool(reasons),
          "reason": "; ".join(reasons)}


def main(argv):
  del argv
  from w2s_jax.main import _CONFIG  # noqa: PLC0415  (the main job's --config flags)
  r = check(_CONFIG.value.task, _THRESHOLD.value, _MAX_ROWS.value)
  print(f"{r['task']}: bag of words {r['bag_of_words_acc']:.3f}, length {r['length_acc']:.3f} "
        f"({r['n_train']} train / {r['n_test']} test rows): "
        + (f"LEAK: {r['reason']}" if r["leak"] else "no leak found"))
  sys.exit(1 if r["leak"] else 0)


if __name__ == "__main__":
  from absl import app, flags  # noqa: PLC0415

  import w2s_jax.main  # noqa: F401,PLC0415  (defines --config)
  _THRESHOLD = flags.DEFINE_float("threshold", 0.9, "Accuracy that counts as a leak.")
  _MAX_ROWS = flags.DEFINE_integer("max_rows", 4000, "Rows per split used.")
  app.run(main)
