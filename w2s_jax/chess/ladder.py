"""Chess puzzles with a bootstrapping ladder M1 < M2 < ... < Mn (paper section 4.3.1).

Stages (cached by content hash, resumable, like the NLP pipeline's):
  corpus              (position, move) pairs for pretraining, disjoint from every puzzle
  pretrain(Mk)        Mk trained with next-move prediction on the corpus for its step budget
                      (a rung is a model size AND a pretraining budget: a compute ladder)
  finetune(Mk, slice, supervisor)   Mk fine-tuned on a slice's moves: the ground truth (weak M1 on
                      the weak-train slice; the ceilings) or a supervisor stage's greedy moves
                      (hard weak labels); predicts the test set, the extra evaluation sets and
                      every transfer slice (the labels it may hand down).
For every rung k >= 2: the ceiling (Mk on ground truth), the naive student (M1's labels of transfer
slice k-1 -> Mk) and the bootstrapped student (the rung k-1 bootstrapped student's labels of the
same slice -> Mk; at k = 2 it is the naive student). Both students of a rung see the same puzzles.
"""
import dataclasses
import hashlib
import logging
import time

import numpy as np

from w2s_jax import config as config_lib, distributed, metrics, models, report, sharding, \
    stages, train
from w2s_jax.chess import corpus as corpus_lib, decode, puzzles
from w2s_jax.pipeline import COMPILES, hashed_train, loss_hp

log = logging.getLogger("w2s_jax")


def rung_name(i: int, rung) -> str:
  return f"M{i + 1}:{models.display_name(rung)}" + (
      f"+pt{rung.pretrain_steps}" if rung.pretrain_steps else "")


class Ladder:
  """Puzzles, encodings, mesh and stage store of one chess run."""

  def __init__(self, cfg, workdir: str):
    self.cfg, ch = cfg, cfg.chess
    self.rungs = config_lib.ladder_rungs(cfg)
    sizes = {"test": ch.n_test, "weak": ch.n_weak_train,
             **{f"transfer{k}": ch.n_transfer for k in range(1, len(self.rungs))}}
    pool = puzzles.load(ch.puzzles, ch.limit)
    self.positions = puzzles.split(pool, sizes, ch.split_seed)
    used = {puzzles.board_key(p.board()) for ps in self.positions.values() for p in ps}
    # The pretraining corpus leaves out every puzzle position of every source, used or not.
    self.puzzle_keys = {puzzles.board_key(p.board()) for p in pool}
    for name in ch.eval_sets:  # held-out sets: drop any position a training slice contains
      everything = puzzles.load(name)
      self.puzzle_keys |= {puzzles.board_key(p.board()) for p in everything}
      extra = [p for p in everything if puzzles.board_key(p.board()) not in used]
      self.positions[name] = extra[:ch.n_eval] if ch.n_eval else extra
    self.codec = decode.codec(ch.encoding, cfg.tokenizer, cfg.max_len, ch.answer_len,
                              tuple(cfg.train.buckets))
    self.data = {name: self.codec.dataset(ps) for name, ps in self.positions.items()}
    self.data_keys = {name: ds.key() for name, ds in self.data.items()}
    self.answers = {name: np.array([p.answer for p in ps]) for name, ps in self.positions.items()}
    self.mesh = sharding.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor)
    self.rules = sharding.check_rules(cfg.rules)
    self.store = stages.StageStore(workdir)
    self.writer = report.MetricWriter(workdir) if distributed.is_main() else None
    # Stage keys and parsed answers, computed once per run (every stage spec asks for them).
    self._trainers, self._keys, self._moves = {}, {}, {}
    log.info("puzzles (%s): %s; mesh %s", ch.puzzles,
             {k: len(v) for k, v in self.positions.items()}, dict(self.mesh.shape))

  # ------------------------------------------------------------------------------ helpers
  def trainer(self, rung) -> train.Trainer:
    k = (rung.size, rung.init, rung.remat)
    if k not in self._trainers:
      mc = models.from_spec(rung, self.codec.vocab_size)
      self._trainers[k] = train.Trainer(mc, 0, self.mesh, self.rules,
                                        dtype=self.cfg.train.dtype, remat=rung.remat,
                                        attention=self.cfg.train.attention)
    return self._trainers[k]

  def _model(self, rung) -> dict:
    """What a stage key hashes of a rung's model (a checkpoint is fingerprinted once per run)."""
    return {"size": rung.size, "init": rung.init,
            **dataclasses.asdict(self.trainer(rung).model_cfg),
            "checkpoint": models.fingerprint(rung.init)}

  # ------------------------------------------------------------------------------- stages
  def stage_corpus(self) -> str:
    if "corpus" not in self._keys:
      self._keys["corpus"] = self._stage_corpus()
    return self._keys["corpus"]

  def _stage_corpus(self) -> str:
    c = self.cfg.chess.corpus
    exclude = self.puzzle_keys
    spec = {"kind": "corpus", **c.to_dict(),
            "exclude": hashlib.sha256("\n".join(sorted(exclude)).encode()).hexdigest()[:16]}
    key = stages.stage_key(spec)
    if self.store.done("corpus", key):
      return key
    t0 = time.time()
    if c.source == "self-play":
      fens, moves, stats = corpus_lib.self_play(
          c.n_positions, player=c.player, depth=c.depth, seed=c.seed,
          random_plies=tuple(c.random_plies), random_move_prob=c.random_move_prob,
          max_plies=c.max_plies, exclude=exclude)
    else:
      fens, moves, stats = corpus_lib.from_pgn(c.source.split(":", 1)[1], c.n_positions, exclude)
    seconds = time.time() - t0
    # ASCII bytes, not numpy's 4-byte unicode: a 300k-position corpus is 20 MB, not 80.
    self.store.save("corpus", key, spec, arrays={"fen": np.array(fens, dtype="S"),
                                                 "move": np.array(moves, dtype="S")},
                    metrics={"seconds": seconds, "positions": len(fens),
                             "positions_per_s": len(fens) / seconds, **stats})
    log.info("[corpus] %d positions from %d games (%s) in %.0fs; %d puzzle positions left out "
             "(stage %s)", len(fens), stats["games"], c.source if c.source != "self-play" else
             f"{c.player} self-play", seconds, stats["excluded"], key)
    return key

  def stage_pretrain(self, i: int) -> str | None:
    """Rung i after its pretraining budget on the corpus (None: no pretraining)."""
    if ("pretrain", i) not in self._keys:
      self._keys["pretrain", i] = self._stage_pretrain(i)
    return self._keys["pretrain", i]

  def _stage_pretrain(self, i: int) -> str | None:
    rung = self.rungs[i]
    if not rung.pretrain_steps:
      return None
    p = self.cfg.chess.pretrain
    corpus_key = self.stage_corpus()
    tcfg = train.with_overrides(self.cfg.train, batch_size=p.batch_size, micro_batch_size=0,
                                lr=p.lr, warmup_steps=p.warmup_steps, epochs=1.0)
    spec = {"kind": "pretrain", "model": self._model(rung), "steps": rung.pretrain_steps,
            "train": hashed_train(tcfg), "corpus": corpus_key, "seed": p.seed,
            "encoding": self.codec.spec}
    key = stages.stage_key(spec)
    if self.store.done("pretrain", key):
      return key
    tr, label = self.trainer(rung), f"pretrain:{rung_name(i, rung)}"
    t0 = time.time()
    arrays = {k: v.astype(str) for k, v in self.store.arrays("corpus", corpus_key).items()}
    boards = [puzzles.Position("", f, m, 0, f, ()) for f, m in zip(arrays["fen"], arrays["move"])]
    ds = self.codec.dataset(boards)
    log.info("[%s] %d steps of %d positions over %d corpus positions (%.1f epochs)", label,
             rung.pretrain_steps, p.batch_size, len(ds),
             rung.pretrain_steps * p.batch_size / len(ds))
    ds, targets = self.codec.training(ds, boards)
    result = train.fit(tr, tr.init_params(p.seed), ds, targets, loss_name="xent",
                       loss_hp={}, tcfg=tcfg, lr=p.lr, seed=p.seed, writer=self.writer,
                       label=label, ckpt_dir=self.store.ckpt_dir("pretrain", key),
                       steps=rung.pretrain_steps)
    m = {"seconds": time.time() - t0, "train_seconds": result.seconds, "steps": result.steps,
         "final_train_loss": result.history[-1]["loss"], "resumed_from": result.resumed_from,
         **self._score(tr, result.params, "test", zero_shot=True)[1]}
    self.store.save("pretrain", key, spec, params=result.params, metrics=m)
    log.info("[%s] done in %.0fs; zero-shot test accuracy %.4f (stage %s)", label, m["seconds"],
             m["test_acc"], key)
    return key

  def initial_params(self, i: int, seed: int):
    rung, tr = self.rungs[i], self.trainer(self.rungs[i])
    pre = self.stage_pretrain(i)
    if pre:
      return self.store.params("pretrain", pre, tr.abstract_params(), tr.param_shardings)
    return models.initial_params(rung.init, tr, seed)

  def _score(self, tr, params, *names, zero_shot=False):
    """Predictions (the codec's answers) of `names` and their metrics."""
    arrays, m = {}, {}
    for name in names:
      answers = self.codec.answers(tr, params, self.data[name], self.positions[name],
                                   self.cfg.chess.legal_mask, self.cfg.train.eval_batch_size)
      arrays[name] = answers
      moves = self.codec.moves(answers, self.positions[name])
      right = moves == self.answers[name]
      prefix = "test_" if name == "test" else f"{name}_"
      m[prefix + "acc"], m[prefix + "legal"] = float(right.mean()), float((moves != "").mean())
      if name == "test" and not zero_shot:
        m["test_acc_by_rating"] = self._by_rating(right, self.positions[name])
    return arrays, m

  def _by_rating(self, right, positions) -> dict:
    edges = list(self.cfg.chess.rating_bands)
    ratings = np.array([p.rating for p in positions])
    band = np.searchsorted(edges, ratings, side="right")
    names = [f"<{edges[0]}"] + [f"{a}-{b}" for a, b in zip(edges, edges[1:])] + [f">={edges[-1]}"]
    return {names[b]: [float(right[band == b].mean()), int((band == b).sum())]
            for b in range(len(names)) if (band == b).any()}

  def stage_finetune(self, i: int, split: str, supervisor: str | None, loss: str,
                     seed: int) -> str:
    """Rung i fine-tuned on `split`'s ground truth (supervisor None) or on the supervisor
    stage's answers for it."""
    rung, ch = self.rungs[i], self.cfg.chess
    hp = loss_hp(self.cfg, loss)
    spec = {"kind": "finetune", "model": self._model(rung), "lr": rung.lr or self.cfg.train.lr,
            "pretrain": self.stage_pretrain(i), "train": hashed_train(self.cfg.train),
            "data": self.data_keys[split], "labels": supervisor or "ground truth",
            "loss": loss, "loss_hp": hp, "seed": seed, "legal_mask": ch.legal_mask,
            "eval": sorted(self.data_keys.values()), "encoding": self.codec.spec}
    key = stages.stage_key(spec)
    label = f"{'gt' if supervisor is None else 'student'}:{rung_name(i, rung)}:{split}:{loss}" \
            f":s{seed}"
    if self.store.done("finetune", key):
      log.info("[%s] cached (stage %s)", label, key)
      return key
    tr = self.trainer(rung)
    ds, targets = self.codec.training(self.data[split], self.positions[split], None if (
        supervisor is None) else self.store.arrays("finetune", supervisor)[split])
    t0, compiles = time.time(), COMPILES["n"]
    result = train.fit(tr, self.initial_params(i, seed), ds, targets, loss_name=loss,
                       loss_hp=hp, tcfg=self.cfg.train, lr=spec["lr"], seed=seed,
                       writer=self.writer, label=label,
                       ckpt_dir=self.store.ckpt_dir("finetune", key))
    names = [n for n in self.data if n != split]
    arrays, m = self._score(tr, result.params, *names)
    m.update(seconds=time.time() - t0, train_seconds=result.seconds, steps=result.steps,
             final_train_loss=result.history[-1]["loss"], resumed_from=result.resumed_from,
             compiles=COMPILES["n"] - compiles)
    self.store.save("finetune", key, spec, arrays=arrays, metrics=m)
    log.info("[%s] done: test acc %.4f (legal %.3f) in %.0fs (stage %s)", label, m["test_acc"],
             m["test_legal"], m["seconds"], key)
    return key

  def test_moves(self, key: str) -> np.ndarray:
    """A finetune stage's test answers as moves ("" for an illegal one), parsed once."""
    if key not in self._moves:
      self._moves[key] = self.codec.moves(self.store.arrays("finetune", key)["test"],
                                          self.positions["test"])
    return self._moves[key]

  def correct(self, key: str) -> np.ndarray:
    return self.test_moves(key) == self.answers["test"]


def run(cfg, workdir: str) -> list[dict]:
  """Every rung's ceiling, naive and bootstrapped students, for every seed and loss."""
  lad = Ladder(cfg, workdir)
  names = [rung_name(i, r) for i, r in enumerate(lad.rungs)]
  for i in range(len(lad.rungs)):  # shared by every seed: the "pretrained checkpoints"
    lad.stage_pretrain(i)
  rows, runs = [], {}
  for seed in cfg.seeds:
    weak = lad.stage_finetune(0, "weak", None, "xent", seed)
    for loss in cfg.losses:
      boot = weak
      for k in range(1, len(lad.rungs)):
        split = f"transfer{k}"
        ceiling = lad.stage_finetune(k, "weak", None, "xent", seed)
        naive = lad.stage_finetune(k, split, weak, loss, seed)
        boot = lad.stage_finetune(k, split, boot, loss, seed)
        for method, student, chain in (("naive", naive, [names[0], names[k]]),
                                       ("bootstrap", boot, names[:k + 1])):
          keys = {"weak": weak, "student": student, "ceiling": ceiling}
          right = {n: lad.correct(v) for n, v in keys.items()}
          m = {n: lad.store.metrics("finetune", v) for n, v in keys.items()}
          accs = {n: float(r.mean()) for n, r in right.items()}
          runs[(k, loss, method, seed)] = [right["weak"], right["student"], right["ceiling"]]
          rows.append({
              # The stage keys carry every setting (legal masking, learning rate, ...): a rerun
              # with other settings adds rows to results.json instead of replacing these.
              "id": "|".join(str(x) for x in ("chess", lad.data_keys["test"], names[k], loss,
                                              method, seed, stages.stage_key(keys))),
              "task": "chess", "data_key": lad.data_keys["test"], "rung": k + 1,
              "weak": names[0], "strong": names[k], "chain": chain, "method": method,
              "loss": loss, "seed": seed, "weak_acc": accs["weak"],
              "student_acc": accs["student"], "ceiling_acc": accs["ceiling"],
              "pgr": metrics.pgr(accs["weak"], accs["student"], accs["ceiling"]),
              "pgr_ci95": metrics.pgr_interval_correct([runs[(k, loss, method, seed)]],
                                                       samples=cfg.bootstrap_samples, seed=seed),
              "pgr_valid": accs["ceiling"] > accs["weak"],
              "legal": {n: m[n]["test_legal"] for n in keys},
              "by_rating": {n: m[n]["test_acc_by_rating"] for n in keys},
              "eval_sets": {s: {n: m[n][f"{s}_acc"] for n in keys} for s in cfg.chess.eval_sets},
              "agreement": float(np.mean(lad.test_moves(student) == lad.test_moves(weak))),
              "n_test": len(lad.positions["test"]), "stage_keys": keys,
              "seconds": {n: m[n]["seconds"] for n in keys},
          })
  stage_seconds = stage_times(lad)
  if distributed.is_main():
    path = report.write_results(workdir, rows)
    log.info("results: %s", path)
    print(ladder_table(rows, runs, cfg.bootstrap_samples), flush=True)
    print(stage_seconds, flush=True)
  distributed.barrier("results written")
  return rows


def stage_times(lad: Ladder) -> str:
  """Wall time of the corpus and pretraining stages (the fine-tunes are in results.json)."""
  lines = ["stage wall times (s):"]
  if any(r.pretrain_steps for r in lad.rungs):
    m = lad.store.metrics("corpus", lad.stage_corpus())
    lines.append(f"  corpus: {m['seconds']:.0f} ({m['positions']} positions, "
                 f"{m['positions_per_s']:.0f}/s)")
  for i, r in enumerate(lad.rungs):
    if r.pretrain_steps:
      m = lad.store.metrics("pretrain", lad.stage_pretrain(i))
      lines.append(f"  pretrain {rung_name(i, r)}: {m['seconds']:.0f} (zero-shot test acc "
                   f"{m['test_acc']:.4f})")
  return "\n".join(lines)


def ladder_table(rows: list[dict], runs: dict, samples: int) -> str:
  """Per rung and loss, over seeds: weak, naive, bootstrapped and ceiling accuracy (mean), PGR
  of both students with a 95% interval resampling seeds and test puzzles."""
  head = f"{'rung':>28} {'loss':>8} {'seeds':>5} {'weak':>6} {'naive':>6} {'boot':>6} " \
         f"{'ceiling':>7} {'PGR naive [95% CI]':>22} {'PGR boot [95% CI]':>22}"
  lines = [head, "-" * len(head)]
  for strong, loss in dict.fromkeys((r["strong"], r["loss"]) for r in rows):
    sel = {m: [r for r in rows if r["strong"] == strong and r["loss"] == loss
               and r["method"] == m] for m in ("naive", "bootstrap")}
    acc = {m: metrics.pooled_pgr([runs[(r["rung"] - 1, loss, m, r["seed"])] for r in sel[m]],
                                 samples=samples) for m in sel}
    cells = ["{:+.2f} [{:+.2f}, {:+.2f}]".format(acc[m]["pgr"], *acc[m]["pgr_ci95"])
             for m in ("naive", "bootstrap")]
    lines.append(f"{strong:>28} {loss:>8} {len(sel['naive']):>5} "
                 f"{acc['naive']['weak_acc']:6.3f} {acc['naive']['student_acc']:6.3f} "
                 f"{acc['bootstrap']['student_acc']:6.3f} {acc['naive']['ceiling_acc']:7.3f} "
                 f"{cells[0]:>22} {cells[1]:>22}")
  return "\n".join(lines)
