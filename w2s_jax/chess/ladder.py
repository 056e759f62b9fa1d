"""Chess puzzles with a bootstrapping ladder M1 < M2 < ... < Mn (paper section 4.3.1): the
stage graph of one config.

  corpus                      (position, move) pairs for pretraining, disjoint from every puzzle
  pretrain(Mk)                Mk after its budget of next-move prediction on the corpus (a rung is
                              a model size AND a pretraining budget: a compute ladder)
  predict(pretrain(Mk), test) zero-shot accuracy, with and without legal-move masking
  train(Mk, slice, labels)    Mk fine-tuned on a slice's ground truth (M1 on `weak`: the
                              supervisor; Mk on `weak`: the ceiling) or on a predict stage's
                              greedy moves for that slice (hard weak labels)
  predict(train, split, legal_mask)   answers; test and eval sets are scored, transfer slices
                              are the labels handed down
For every rung k >= 2: the ceiling, the naive student (M1's labels of transfer slice k-1 -> Mk)
and the bootstrapped student (the rung k-1 bootstrapped student's labels of the same slice -> Mk;
at k = 2 it is the naive student). Both students of a rung see the same puzzles.
With chess.legal_loss (native encoding) pretraining and every fine-tune take a softmax over the
position's legal moves only, so capacity goes to move quality rather than legality; a label that
is not a legal move then trains nothing (pair it with label_legal_mask).
"""
import dataclasses
import hashlib
import logging

import numpy as np

from w2s_jax import loop, metrics, models, options, results, runtime as rt_lib, train
from w2s_jax.chess import corpus as corpus_lib, decode, encoding, puzzles
from w2s_jax.graph import Output, Stage

log = logging.getLogger("w2s_jax")


def rung_name(i: int, rung) -> str:
  return f"M{i + 1}:{models.display_name(rung)}" + (
      f"+pt{rung.pretrain_steps}" if rung.pretrain_steps else "") + (
      f"/{rung.pretrain_positions}pos" if rung.pretrain_positions else "")


class Puzzles:
  """Slices, encodings and answers of one puzzle configuration (shared by a sweep): the test
  slice and the eval sets for every seed, and each replicate seed's weak and transfer slices
  (`view(seed)`; with seed_scope batch_order, the split_seed slices for every seed)."""

  def __init__(self, cfg, n_rungs: int):
    ch = cfg.chess
    self.sizes = {"test": ch.n_test, **({"dev": ch.n_dev} if ch.n_dev else {}),
                  "weak": ch.n_weak_train,
                  **{f"transfer{k}": ch.n_transfer for k in range(1, n_rungs)}}
    self.split_seed, self.per_seed = ch.split_seed, cfg.seed_scope == "split"
    self.pool = puzzles.load(ch.puzzles, ch.limit)
    self.pool_key = hashlib.sha256("\n".join(sorted(p.id for p in self.pool)).encode()
                                   ).hexdigest()[:16]
    self.codec = decode.codec(ch.encoding, cfg.tokenizer, cfg.max_len, ch.answer_len,
                              tuple(cfg.train.buckets), ch.layout)
    # Every slice a seed may draw leaves out the eval sets' positions, and the test slice.
    used = {puzzles.board_key(p.board()) for p in self.pool}
    # The pretraining corpus leaves out every puzzle position of every source, used or not.
    self.puzzle_keys = set(used)
    extra_sets = {}
    for name in ch.eval_sets:  # held-out sets: drop any position a training slice may contain
      everything = puzzles.load(name)
      self.puzzle_keys |= {puzzles.board_key(p.board()) for p in everything}
      extra = [p for p in everything if puzzles.board_key(p.board()) not in used]
      extra_sets[name] = extra[:ch.n_eval] if ch.n_eval else extra
    base = self._encode(puzzles.split(self.pool, self.sizes, ch.split_seed))
    extra = self._encode(extra_sets)
    self.shared = {k: {**base[k], **extra[k]} for k in base}
    self._views = {None: self.shared}
    # A random legal move's expected accuracy: the chance baseline of every accuracy.
    self.chance = random_legal_accuracy(self.shared["positions"]["test"])
    log.info("puzzles (%s): %s; a random legal move solves %.2f%% of test; %s", ch.puzzles,
             {k: len(v) for k, v in self.shared["positions"].items()}, 100 * self.chance,
             "weak and transfer slices drawn per seed" if self.per_seed else
             "one set of slices for every seed")

  def _encode(self, positions: dict) -> dict:
    data = {name: self.codec.dataset(ps) for name, ps in positions.items()}
    return {"positions": positions, "data": data,
            "keys": {name: ds.key() for name, ds in data.items()},
            "answers": {name: np.array([p.answer for p in ps]) for name, ps in positions.items()}}

  def view(self, seed: int | None) -> dict:
    """{"positions", "data", "keys", "answers"}: split name -> its value, for `seed`."""
    seed = seed if self.per_seed else None
    if seed not in self._views:
      own = self._encode({k: v for k, v in puzzles.split(
          self.pool, self.sizes, self.split_seed, replicate=seed).items()
          if k not in puzzles.FIXED})
      self._views[seed] = {k: {**self.shared[k], **own[k]} for k in own}
    return self._views[seed]

  def seeded(self, seed: int | None) -> dict:
    """The seed's own slice keys -> what they stand for whatever the seed (Stage.seeded)."""
    if not self.per_seed or seed is None:
      return {}
    view = self.view(seed)
    # What the seed draws from: the source's positions less the fixed slices (test, dev).
    fixed = ", ".join(f"{n} {self.shared['keys'][n]}" for n in self.sizes if n in puzzles.FIXED)
    return {view["keys"][name]: f"{name} ({n} puzzles) cut by the seed from {self.pool_key} "
                                f"beside {fixed}"
            for name, n in self.sizes.items() if name not in puzzles.FIXED}


class Builder:
  def __init__(self, cfg, rt, graph):
    self.cfg, self.rt, self.graph, ch = cfg, rt, graph, cfg.chess
    self.rungs = options.ladder_rungs(cfg)
    key = ("chess", ch.to_json(), cfg.tokenizer, cfg.max_len, tuple(cfg.train.buckets),
           len(self.rungs), cfg.seed_scope)
    self.pz = rt.memo(key, lambda: Puzzles(cfg, len(self.rungs)))
    self.codec, self._rows = self.pz.codec, []

  def trainer(self, rung) -> train.Trainer:
    mc = self.model_cfg(rung)
    return self.rt.trainer(mc, 0, dtype=self.cfg.train.dtype, attention=self.cfg.train.attention,
                           remat=rung.remat, move_geometry=encoding.move_geometry()
                           if mc.move_head == "squares" else None)

  def model_cfg(self, rung):
    mc = self.rt.model_cfg(rung, self.codec.vocab_size)
    if self.cfg.chess.move_head == "squares":  # a board encoder scoring moves square to square
      mc = dataclasses.replace(mc, causal=False, move_head="squares")
    return mc

  def identity(self, rung) -> dict:
    return {**rt_lib.model_identity(rung, self.model_cfg(rung)), "encoding": self.codec.spec}

  # ----------------------------------------------------------------------------- stages
  def corpus(self) -> Stage:
    c = self.cfg.chess.corpus
    exclude = self.pz.puzzle_keys
    spec = {**{k: v for k, v in c.to_dict().items() if k != "workers"},  # same corpus for any
            "exclude": hashlib.sha256("\n".join(sorted(exclude)).encode()).hexdigest()[:16]}

    def run():
      if c.source == "self-play":
        fens, moves, stats = corpus_lib.self_play(
            c.n_positions, player=c.player, depth=c.depth, seed=c.seed,
            random_plies=tuple(c.random_plies), random_move_prob=c.random_move_prob,
            max_plies=c.max_plies, min_gap=c.min_gap, workers=c.workers, exclude=exclude)
      else:
        fens, moves, stats = corpus_lib.from_pgn(c.source.split(":", 1)[1], c.n_positions,
                                                 exclude)
      log.info("[corpus] %d positions from %d games; %d puzzle positions left out",
               len(fens), stats["games"], stats["excluded"])
      # ASCII bytes, not numpy's 4-byte unicode: a 300k-position corpus is 20 MB, not 80.
      return Output(arrays={"fen": np.array(fens, dtype="S"), "move": np.array(moves, dtype="S")},
                    metrics={"positions": len(fens), **stats})
    return self.graph.add(Stage("corpus", spec, "corpus", run,
                                cost=f"{c.n_positions} positions ({c.source})"))

  def pretrain(self, i: int) -> Stage | None:
    rung = self.rungs[i]
    if not rung.pretrain_steps:
      return None
    p, corpus = self.cfg.chess.pretrain, self.corpus()
    tcfg = train.with_overrides(self.cfg.train, batch_size=p.batch_size, micro_batch_size=0,
                                lr=p.lr, warmup_steps=p.warmup_steps, epochs=1.0)
    spec = {"model": self.identity(rung), "steps": rung.pretrain_steps,
            "train": rt_lib.hashed_train(tcfg), "corpus": corpus.key, "seed": p.seed,
            **self._loss_spec(),
            # Only when set: the rungs on the whole corpus keep their keys (and caches).
            **({"positions": rung.pretrain_positions} if rung.pretrain_positions else {})}
    label = f"pretrain:{rung_name(i, rung)}"

    def run():
      tr = self.trainer(rung)
      arrays = {k: v[:rung.pretrain_positions or None].astype(str)
                for k, v in self.rt.store.arrays("corpus", corpus.key).items()}
      boards = [puzzles.Position("", f, m, 0, f, ()) for f, m in zip(arrays["fen"],
                                                                       arrays["move"])]
      ds, targets = self.codec.training(self.codec.dataset(boards), boards)
      result = loop.fit(tr, tr.init_params(p.seed), ds, targets, objective=self._objective(),
                         loss_name="xent", loss_hp={}, tcfg=tcfg, lr=p.lr, seed=p.seed,
                         writer=self.rt.stage_writer(stage), label=label,
                         ckpt_dir=self.rt.store.ckpt_dir("pretrain", stage.key),
                         steps=rung.pretrain_steps, legal=self._legal(
                             boards, f"{corpus.key}:{rung.pretrain_positions}"))
      self.rt.keep_params(stage.name, result.params)
      return Output(params=result.params, metrics={
          "train_seconds": result.seconds, "steps": result.steps, "history": result.history,
          "final_train_loss": result.history[-1]["loss"], "resumed_from": result.resumed_from,
          "speed": result.speed})
    stage = self.graph.add(Stage("pretrain", spec, label, run, (corpus,),
                                 cost=f"{rung.pretrain_steps} steps x {p.batch_size}"))
    return stage

  def _objective(self) -> str:
    return "hard" if self.cfg.chess.encoding == "native" else "answer"

  def _loss_spec(self) -> dict:
    # Only when on: the stages of runs without it keep their keys (and caches).
    return {"legal_loss": True} if self.cfg.chess.legal_loss else {}

  def _legal(self, positions, key: str):
    """The positions' legal moves for a legal-move loss (None: a softmax over every token);
    once per invocation (a 100k-position corpus takes ~10 s, and every rung pretrains on it)."""
    if not self.cfg.chess.legal_loss:
      return None
    return self.rt.memo(("chess legal", key), lambda: self.codec.legal(positions))

  def finetune(self, i: int, split: str, labels: Stage | None, loss: str, seed: int,
               role: str) -> Stage:
    """Rung i fine-tuned on `split`'s ground truth (labels None) or a predict stage's answers."""
    rung, mc = self.rungs[i], self.model_cfg(self.rungs[i])
    view = self.pz.view(seed)
    hp = rt_lib.loss_hp(self.cfg, loss, models.param_count(mc))
    init = self.pretrain(i)
    lr = rt_lib.learning_rate(self.cfg.train, mc, rung)
    tcfg, steps = rt_lib.role_schedule(self.cfg, role, rung)
    spec = {"model": self.identity(rung), "init": init.key if init else None,
            "seed": seed, "data": view["keys"][split],
            "labels": labels.key if labels else "ground truth", "loss": loss, "loss_hp": hp,
            "train": rt_lib.hashed_train(tcfg), "steps": steps, "lr": lr, **self._loss_spec()}
    label = f"{role}:{rung_name(i, rung)}:{split}:{loss}:s{seed}"

    def run():
      tr = self.trainer(rung)
      answers = None if labels is None else self.rt.store.arrays("predict", labels.key)["answers"]
      ds, targets = self.codec.training(view["data"][split], view["positions"][split], answers)
      start = (self.rt.params("pretrain", init.key, tr) if init is not None
               else models.initial_params(rung.init, tr, seed))
      result = loop.fit(tr, start, ds, targets, objective=self._objective(), loss_name=loss,
                         loss_hp=hp, tcfg=tcfg, lr=lr, seed=seed, steps=steps,
                         writer=self.rt.stage_writer(stage), label=label,
                         ckpt_dir=self.rt.store.ckpt_dir("train", stage.key),
                         profile_dir=self.rt.profile_dir(stage),
                         legal=self._legal(view["positions"][split], view["keys"][split]))
      self.rt.keep_params(stage.name, result.params)
      return Output(params=result.params, metrics={
          "train_seconds": result.seconds, "steps": result.steps, "history": result.history,
          "final_train_loss": result.history[-1]["loss"], "resumed_from": result.resumed_from,
          "speed": result.speed})
    deps = tuple(d for d in (init, labels) if d is not None)
    n = len(view["data"][split])
    total = steps or max(1, int(np.ceil(tcfg.epochs * (n // tcfg.batch_size))))
    stage = self.graph.add(Stage("train", spec, label, run, deps,
                                 cost=f"{total} steps x {tcfg.batch_size}", seed=seed,
                                 seeded=self.pz.seeded(seed)))
    return stage

  def predict(self, i: int, trained: Stage, split: str, legal_mask: bool,
              seed: int | None = None) -> Stage:
    """Greedy answers of a train (or pretrain) stage on a split (of `seed`'s slices), scored
    against the puzzles; the legal-move mask applies to the logits."""
    rung, view = self.rungs[i], self.pz.view(seed)
    spec = {"train": trained.key, "train_kind": trained.kind, "data": view["keys"][split],
            "what": "answers", "legal_mask": legal_mask, "mask": "logits"}

    def run():
      tr = self.trainer(rung)
      params = self.rt.params(trained.kind, trained.key, tr)
      positions = view["positions"][split]
      answers = self.codec.answers(tr, params, view["data"][split], positions, legal_mask,
                                   self.cfg.train.eval_batch_size)
      moves = self.codec.moves(answers, positions)
      correct = moves == view["answers"][split]
      m = {"acc": float(correct.mean()), "legal": float((moves != "").mean())}
      if split == "test":
        m["acc_by_rating"] = self._by_rating(correct, positions)
      return Output(arrays={"answers": answers, "correct": correct, "legal": moves != "",
                            "moves": moves.astype("S")}, metrics=m)
    mask = "masked" if legal_mask else "unmasked"
    return self.graph.add(Stage("predict", spec, f"predict:{trained.label}:{split}:{mask}", run,
                                (trained,), cost=f"{len(view['data'][split])} positions",
                                seeded=self.pz.seeded(seed)))

  def _by_rating(self, right, positions) -> dict:
    edges = list(self.cfg.chess.rating_bands)
    ratings = np.array([p.rating for p in positions])
    band = np.searchsorted(edges, ratings, side="right")
    names = [f"<{edges[0]}"] + [f"{a}-{b}" for a, b in zip(edges, edges[1:])] + [f">={edges[-1]}"]
    return {names[b]: [float(right[band == b].mean()), int((band == b).sum())]
            for b in range(len(names)) if (band == b).any()}

  # ------------------------------------------------------------------------------ build
  def build(self) -> None:
    cfg, ch = self.cfg, self.cfg.chess
    masks = (False, True) if ch.encoding == "native" else (False,)
    self.zero_shot = {}
    for i in range(len(self.rungs)):  # shared by every seed: the "pretrained checkpoints"
      pre = self.pretrain(i)
      if pre is not None:
        self.zero_shot[i] = {m: self.predict(i, pre, "test", m) for m in masks}
    scored = ["test", *ch.eval_sets, *(["dev"] if ch.n_dev else [])]
    for seed in cfg.seeds:
      weak = self.finetune(0, "weak", None, "xent", seed, "weak")
      for loss in cfg.losses:
        boot = weak
        for k in range(1, len(self.rungs)):
          split = f"transfer{k}"
          ceiling = self.finetune(k, "weak", None, "xent", seed, "ceiling")
          weak_labels = self.predict(0, weak, split, ch.label_legal_mask, seed)
          naive = self.finetune(k, split, weak_labels, loss, seed, "student")
          boot_labels = self.predict(k - 1, boot, split, ch.label_legal_mask, seed)
          boot_k = self.finetune(k, split, boot_labels, loss, seed, "student")
          for method, student, chain, sup in (("naive", naive, [0, k], weak),
                                              ("bootstrap", boot_k, list(range(k + 1)), boot)):
            trained = {"weak": (0, weak), "student": (k, student), "ceiling": (k, ceiling)}
            preds = {role: {s: self.predict(r, st, s, ch.legal_mask, seed) for s in scored}
                     for role, (r, st) in trained.items()}
            # The model whose labels the student learnt from (M1, or the previous rung's
            # bootstrapped student), on test: misfit and agreement are against it.
            preds["supervisor"] = {"test": self.predict(chain[-2], sup, "test", ch.legal_mask,
                                                        seed)}
            self._rows.append((seed, loss, k, method, chain, trained, preds))
          boot = boot_k

  def check_data(self) -> None:
    from w2s_jax.data import checks  # noqa: PLC0415
    bs = self.cfg.train.batch_size
    for seed in self.cfg.seeds if self.pz.per_seed else self.cfg.seeds[:1]:
      data = self.pz.view(seed)["data"]
      name = (lambda n: f"{n} (seed {seed})") if self.pz.per_seed else str  # noqa: E731
      checks.check_splits({name(n): ds for n, ds in data.items()}, 0,
                          {name(n): bs for n in data if n == "weak" or n.startswith("transfer")})

  def checkpoints(self) -> list:
    return [(r.init, self.trainer(r)) for r in self.rungs if r.init != "scratch"]

  def rows(self) -> list[dict]:
    store, ch = self.rt.store, self.cfg.chess
    test = self.pz.shared
    names = [rung_name(i, r) for i, r in enumerate(self.rungs)]
    zero_shot = {}  # per pretrained rung: accuracy with and without the mask, legal-move rate
    for i, by_mask in self.zero_shot.items():
      m = {mask: store.metrics("predict", s.key) for mask, s in by_mask.items()}
      zero_shot[names[i]] = {("masked" if mask else "unmasked"): v["acc"] for mask, v in m.items()}
      zero_shot[names[i]]["legal_rate"] = m[False]["legal"]
    out = []
    for seed, loss, k, method, chain, trained, preds in self._rows:
      preds = dict(preds)
      sup = preds.pop("supervisor")["test"]
      acc = {r: store.metrics("predict", p["test"].key) for r, p in preds.items()}
      right = {r: store.arrays("predict", p["test"].key)["correct"] for r, p in preds.items()}
      moves = {r: store.arrays("predict", preds[r]["test"].key)["moves"]
               for r in ("weak", "student")}
      moves["supervisor"] = store.arrays("predict", sup.key)["moves"]
      truth = test["answers"]["test"].astype("S")
      a = {r: m["acc"] for r, m in acc.items()}
      group = ["chess", test["keys"]["test"], names[k], loss, method,
               f"mask={ch.legal_mask}", f"labels_mask={ch.label_legal_mask}",
               *(["legal_loss"] if ch.legal_loss else [])]
      out.append({
          **results.row_identity(group, seed, [p["test"] for p in preds.values()], self.cfg),
          "setting": "chess", "task": "chess", "data_key": test["keys"]["test"], "rung": k + 1,
          "weak": names[0], "strong": names[k], "chain": [names[j] for j in chain],
          "supervisor": names[chain[-2]], "seed_scope": self.cfg.seed_scope,
          "method": method, "loss": loss, "seed": seed, "legal_mask": ch.legal_mask,
          "legal_loss": ch.legal_loss,
          "weak_acc": a["weak"], "student_acc": a["student"], "ceiling_acc": a["ceiling"],
          "pgr": metrics.pgr(a["weak"], a["student"], a["ceiling"]),
          "pgr_ci95": metrics.pgr_interval_correct(
              [[right["weak"], right["student"], right["ceiling"]]],
              samples=self.cfg.bootstrap_samples, seed=seed),
          "pgr_valid": a["ceiling"] > a["weak"], "chance": self.pz.chance,
          "zero_shot": zero_shot,
          "legal": {r: m["legal"] for r, m in acc.items()},
          "by_rating": {r: m["acc_by_rating"] for r, m in acc.items()},
          "eval_sets": {s: {r: store.metrics("predict", p[s].key)["acc"]
                            for r, p in preds.items()} for s in ch.eval_sets},
          "agreement": float(np.mean(moves["student"] == moves["weak"])),
          "supervisor_acc": store.metrics("predict", sup.key)["acc"],
          "supervisor_agreement": float(np.mean(moves["student"] == moves["supervisor"])),
          "agreement_split": metrics.agreement_split(moves["supervisor"], moves["student"], truth),
          "misfit_gain": metrics.misfit_gain_hard(moves["supervisor"], moves["student"], truth),
          "n_test": len(test["positions"]["test"]),
          # The student's rung with no fine-tuning, scored as the students are: what its gain
          # and the no-fine-tune PGR are paired against.
          "no_finetune_key": ["predict", self.zero_shot[k][ch.legal_mask].key]
          if k in self.zero_shot else None,
          "stage_keys": {r: st.key for r, (_, st) in trained.items()},
          "predict_keys": {r: p["test"].key for r, p in preds.items()},
          **({"dev_predict_keys": {r: p["dev"].key for r, p in preds.items()}} if ch.n_dev
             else {}),
          "seconds": {r: store.metrics("train", st.key)["seconds"]
                      for r, (_, st) in trained.items()},
      })
    return out


def build(cfg, rt, graph) -> Builder:
  b = Builder(cfg, rt, graph)
  b.build()
  return b


def random_legal_accuracy(positions) -> float:
  """Expected exact-match accuracy of a uniformly random legal move."""
  return float(np.mean([1 / p.board().legal_moves.count() for p in positions]))

