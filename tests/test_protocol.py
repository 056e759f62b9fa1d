"""The protocol behind a finding: replicate seeds with their own split and weak model, no text in
two splits, selection that never reads test, paired intervals and misfit/gain against NumPy."""
import json

import chess
import numpy as np
import pytest

from w2s_jax import config as config_lib, experiment, metrics, paired, pipeline, report, \
    replicates, runtime, stages, summary
from w2s_jax.chess import puzzles
from w2s_jax.data import dataset as data_lib
from w2s_jax.data.tokenizers import ByteTokenizer
from tests.conftest import task_cfg


def _data(cfg, tmp_path):
  return replicates.data_for(cfg, runtime.Runtime(cfg, str(tmp_path)))


def _digests(ds):
  return set(data_lib.row_digests(ds))


# ------------------------------------------------------------------------------ replicates
def test_a_seed_draws_its_own_split_and_the_test_rows_stay(tmp_path, nlp_config):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.seeds = 400, 100, (0, 1)
  data = _data(cfg, tmp_path / "split")
  k0, k1 = data.keys(0), data.keys(1)
  assert k0["a"] != k1["a"] and k0["b"] != k1["b"] and k0["test"] == k1["test"]
  for seed in (0, 1):
    sets = data.sets(seed)
    a, b, test = _digests(sets["a"]), _digests(sets["b"]), _digests(sets["test"])
    assert not a & b and not (a | b) & test and a | b == _digests(data.pool)
  cfg.seed_scope = "batch_order"  # the old meaning, as an explicit option
  shared = _data(cfg, tmp_path / "order")
  assert shared.keys(0)["a"] == shared.keys(1)["a"] == shared.splits.a.key()


@pytest.mark.slow
def test_replicate_seeds_train_their_own_weak_models_and_pool(tmp_path, nlp_config, capsys):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 400, 128, 1.0
  cfg.task.n_dev = 64
  cfg.losses, cfg.seeds = ("xent",), (0, 1)
  cfg.strong.mode, cfg.strong.lr = "probe", 1e-2
  config_lib.validate(cfg, 8)
  rows = experiment.run(cfg, str(tmp_path))
  store = stages.StageStore(str(tmp_path))
  spec = lambda r, role: json.loads((tmp_path / "stages" / f"train-{r['stage_keys'][role]}" /  # noqa: E731
                                     "spec.json").read_text())
  r0, r1 = sorted(rows, key=lambda r: r["seed"])
  assert spec(r0, "weak")["data"] != spec(r1, "weak")["data"]
  labels = [store.arrays("predict", spec(r, "student")["labels"])["probs"] for r in (r0, r1)]
  assert labels[0].shape == labels[1].shape and not np.allclose(labels[0], labels[1])
  # Different splits, one recipe: the two seeds pool into one row of the table.
  assert r0["recipe"] == r1["recipe"] and r0["seed_scope"] == "split"
  results = json.loads((tmp_path / "results.json").read_text())
  (pooled,) = results["pooled"]
  assert pooled["seeds"] == 2
  # The development slice: scored for every role and pooled, shown by `report --dev` only.
  assert pooled["dev"]["seeds"] == 2 and set(r0["dev_predict_keys"]) == {"weak", "student",
                                                                          "ceiling"}
  dev = stages.StageStore(str(tmp_path)).arrays("predict", r0["dev_predict_keys"]["weak"])
  assert len(dev["correct"]) == 64
  assert "development" not in report.tables(results)
  capsys.readouterr()
  report.main([str(tmp_path), "--dev"])
  assert "development slice" in capsys.readouterr().out


def test_training_rows_that_repeat_or_appear_in_test_are_dropped(tmp_path):
  rows = [{"text": f"row {i}", "label": i % 2} for i in range(40)]
  train = rows + rows[:5] + [{"text": "in test too", "label": 1}]
  test = [{"text": "in test too", "label": 1}, {"text": "only test", "label": 0}]
  for name, rs in (("train", train), ("test", test)):
    (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rs))
  cfg = task_cfg("jsonl", train_file=str(tmp_path / "train.jsonl"),
                 test_file=str(tmp_path / "test.jsonl"))
  splits = data_lib.load_splits(cfg, ByteTokenizer(), 32, 0)
  assert splits.dropped["duplicates"] == 6 and len(splits.pool) == 40
  assert not _digests(splits.pool) & _digests(splits.test)


def _positions(n: int) -> list:
  """n distinct positions from random play."""
  rng, out, seen = np.random.default_rng(0), [], set()
  while len(out) < n:
    board = chess.Board()
    for _ in range(int(rng.integers(4, 30))):
      moves = list(board.legal_moves)
      if not moves:
        break
      board.push(moves[int(rng.integers(len(moves)))])
    key = puzzles.board_key(board)
    moves = list(board.legal_moves)
    if key not in seen and moves:
      seen.add(key)
      out.append(puzzles.Position(f"p{len(out)}", board.fen(), moves[0].uci(), 1000,
                                  board.fen(), ()))
  return out


def test_a_chess_seed_draws_its_own_slices_beside_a_fixed_test_slice():
  pos = _positions(120)
  sizes = {"test": 30, "weak": 30, "transfer1": 30}
  shared = puzzles.split(pos, sizes, 0)
  a, b = (puzzles.split(pos, sizes, 0, replicate=s) for s in (0, 1))
  ids = lambda ps: {p.id for p in ps}  # noqa: E731
  assert ids(a["test"]) == ids(b["test"]) == ids(shared["test"])
  assert ids(a["weak"]) != ids(b["weak"])
  for slices in (a, b):
    names = list(slices)
    assert all(not ids(slices[x]) & ids(slices[y]) for x in names for y in names if x < y)


# ------------------------------------------------------------------------------- selection
@pytest.mark.slow
def test_permuting_the_test_labels_leaves_every_kept_step_unchanged(tmp_path, nlp_config,
                                                                   monkeypatch):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 400, 128, 2.0
  cfg.losses = ("xent",)
  cfg.strong.mode, cfg.strong.lr = "probe", 1e-2
  cfg.early_stopping.update(enabled=True, every=2, val_rows=48)
  cfg.curves_every = 2  # test is scored all along: it must not steer what is kept
  config_lib.validate(cfg, 8)
  (row,) = experiment.run(cfg, str(tmp_path / "a"))
  load = data_lib.load_splits

  def permuted(*args):
    s = load(*args)
    test = s.test
    return s._replace(test=data_lib.Dataset(test.tokens, test.lengths,
                                            np.random.default_rng(0).permutation(test.labels)))
  monkeypatch.setattr(data_lib, "load_splits", permuted)
  (other,) = experiment.run(cfg, str(tmp_path / "b"))
  steps = lambda r, d: {role: stages.StageStore(str(tmp_path / d)).metrics(  # noqa: E731
      "train", k)["best_step"] for role, k in r["stage_keys"].items()}
  assert steps(row, "a") == steps(other, "b")
  assert all(s > 0 for s in steps(row, "a").values())  # every role was selected
  assert row["weak_acc"] != other["weak_acc"]  # the test labels did change


# --------------------------------------------------------------------------------- metrics
def test_auroc_ranks_logit_margins_where_probabilities_saturate():
  logits = np.float32([[0, 40], [0, 60], [0, 50], [0, 70]])  # p1 == 1.0 in float32 for all
  labels = np.int32([0, 1, 0, 1])
  assert np.all(metrics.softmax(logits)[:, 1] == 1.0)
  assert metrics.auroc(logits, labels) == 1.0
  # Three classes: one-vs-rest on each class's log-odds.
  three = np.float64([[5, 0, 0], [0, 5, 0], [0, 0, 5], [4, 1, 0]])
  assert metrics.auroc(three, np.int32([0, 1, 2, 0])) == 1.0


def test_paired_intervals_resample_both_methods_on_the_same_rows():
  rng = np.random.default_rng(0)
  n, runs = 400, []
  for _ in range(3):
    truth_w, truth_c = rng.random(n) < 0.6, rng.random(n) < 0.9
    base = rng.random(n) < 0.7
    better = base | (rng.random(n) < 0.1)  # right wherever the base student is, and more
    runs.append([truth_w, base, truth_c, truth_w, better, truth_c])
  diff = lambda a: metrics.pgr_of(a, 3, 4, 5) - metrics.pgr_of(a, 0, 1, 2)  # noqa: E731
  out = metrics.paired_interval(runs, diff, samples=400)
  acc = np.asarray(runs, np.float64).mean((0, 2))
  ref = (acc[4] - acc[3]) / (acc[5] - acc[3]) - (acc[1] - acc[0]) / (acc[2] - acc[0])
  assert out["value"] == pytest.approx(ref, rel=1e-5) and out["seeds"] == 3
  assert 0 < out["ci95"][0] <= ref <= out["ci95"][1]  # paired: never below 0 here
  # Unpaired, each method's own interval overlaps the other's: pairing is what resolves it.
  single = [metrics.pgr_interval_correct([r[i:i + 3] for r in runs], samples=400)
            for i in (0, 3)]
  assert single[0][1] > single[1][0]
  same = metrics.paired_interval([r[:3] + r[:3] for r in runs], diff, samples=200)
  assert same["value"] == 0 and same["ci95"] == [0.0, 0.0]


def test_misfit_and_gain_against_numpy():
  weak = np.float64([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7]])
  student = np.float64([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
  labels = np.int32([0, 0, 1])
  out = metrics.misfit_gain(np.log(weak), np.log(student), labels)
  y = np.eye(2)[labels]
  d = lambda p, q: np.mean([((p[i] - q[i]) ** 2).sum() for i in range(3)])  # noqa: E731
  assert out["sq"]["gain"] == pytest.approx(d(weak, y) - d(student, y))
  assert out["sq"]["misfit"] == pytest.approx(d(student, weak))
  kl = lambda p, q: np.mean([sum(p[i, c] * np.log(p[i, c] / q[i, c])  # noqa: E731
                                 for c in range(2) if p[i, c] > 0) for i in range(3)])
  assert out["kl"]["gain"] == pytest.approx(kl(y, weak) - kl(y, student))
  assert out["kl"]["misfit"] == pytest.approx(kl(student, weak))
  # The projection of the weak labels onto a convex set holding the truth gains at least its
  # misfit (the theorem, on a hand-made case: the set {p : p_truth >= 0.75}).
  proj = weak.copy()
  for i, c in enumerate(labels):
    proj[i, c] = max(proj[i, c], 0.75)
    proj[i, 1 - c] = 1 - proj[i, c]
  mg = metrics.misfit_gain(np.log(weak), np.log(proj), labels)["sq"]
  assert mg["gain"] >= mg["misfit"] > 0
  hard = metrics.misfit_gain_hard(np.int32([0, 1, 1]), np.int32([0, 0, 1]), labels)["sq"]
  assert hard == {"gain": pytest.approx(2 / 3), "misfit": pytest.approx(2 / 3)}
  split = metrics.agreement_split(np.int32([0, 1, 1]), np.int32([0, 0, 1]), labels)
  assert split == {"weak_right": 1.0, "weak_wrong": 0.0}


def test_pooled_misfit_counts_the_runs_where_gain_reaches_misfit():
  rows = [{"misfit_gain": {"sq": {"gain": g, "misfit": m}}, "agreement_split": {
      "weak_right": 0.9, "weak_wrong": w}} for g, m, w in ((0.2, 0.1, 0.5), (0.0, 0.1, 0.7))]
  out = summary.pooled_misfit(rows)
  assert out["misfit_gain"]["sq"] == {"gain": pytest.approx(0.1), "misfit": pytest.approx(0.1),
                                      "gain_reaches_misfit": 1}
  assert out["agreement_split"]["weak_wrong"] == pytest.approx(0.6)


# --------------------------------------------------------------------------- bootstrapping
@pytest.mark.slow
def test_a_pair_bootstraps_through_an_intermediate_model_on_chunks_of_b(tmp_path, nlp_config):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 400, 128, 1.0
  cfg.losses, cfg.seeds = ("xent",), (0, 1)
  cfg.weak.size, cfg.strong.size = "tiny-1", "tiny-3"
  cfg.strong.mode, cfg.strong.lr = "probe", 1e-2
  cfg.bootstrap.via = ("tiny-2",)
  config_lib.validate(cfg, 8)
  rows = experiment.run(cfg, str(tmp_path))
  assert sorted((r["method"], r["seed"]) for r in rows) == [
      ("bootstrap", 0), ("bootstrap", 1), ("naive", 0), ("naive", 1)]
  spec = lambda kind, key: json.loads(  # noqa: E731
      (tmp_path / "stages" / f"{kind}-{key}" / "spec.json").read_text())
  data = _data(cfg, tmp_path)
  keys, sets = data.keys(0), data.sets(0)
  assert not _digests(sets["b1"]) & _digests(sets["b2"]) and len(sets["b1"]) == len(sets["b2"])
  by = {r["method"]: r for r in rows if r["seed"] == 0}
  naive, boot = (spec("train", by[m]["stage_keys"]["student"]) for m in ("naive", "bootstrap"))
  # Both students on the last chunk: naive from the weak labels, bootstrapped from the
  # intermediate model's, which learnt the weak labels of the first chunk.
  assert naive["data"] == boot["data"] == keys["b2"]
  weak_labels = spec("predict", naive["labels"])
  assert weak_labels["train"] == by["naive"]["stage_keys"]["weak"]
  mid = spec("train", spec("predict", boot["labels"])["train"])
  assert mid["data"] == keys["b1"] and mid["labels"] == naive["labels"]
  assert by["bootstrap"]["chain"] == ["tiny-1", "tiny-2", "tiny-3"]
  assert by["bootstrap"]["supervisor"] == "tiny-2" and by["naive"]["supervisor"] == "tiny-1"
  results = json.loads((tmp_path / "results.json").read_text())
  (c,) = results["paired"]["methods"]
  assert (c["method"], c["against"], c["seeds"]) == ("bootstrap xent", "naive xent", 2)


def test_seeds_share_a_recipe_and_other_row_counts_do_not(tmp_path, nlp_config):
  """A stage's recipe names its seed's split by what it is, so the seeds of one config pool,
  while a config that trains on other rows (task.n_strong_train) never pools with it."""
  from w2s_jax import graph as graph_lib  # noqa: PLC0415

  def recipes(n_strong):
    cfg = nlp_config("tiny")
    cfg.task.n_train, cfg.task.n_test, cfg.losses, cfg.seeds = 400, 100, ("xent",), (0, 1)
    cfg.task.n_strong_train = n_strong
    g = graph_lib.Graph()
    pipeline.Builder(cfg, runtime.Runtime(cfg, str(tmp_path / str(n_strong))), g).build()
    students = [s for s in g if s.label.startswith("student")]
    assert len({s.key for s in students}) == 2  # one per seed
    return {s.recipe for s in students}
  (one,), (other,) = recipes(64), recipes(96)
  assert one != other


def test_pairs_repeated_in_the_other_order_are_duplicates():
  tok = np.zeros((3, 6, 2), np.int32)
  tok[0, :3, 0], tok[0, :2, 1] = [5, 6, 7], [8, 9]
  tok[1, :2, 0], tok[1, :3, 1] = [8, 9], [5, 6, 7]  # row 0 with its texts swapped
  tok[2, :2, 0], tok[2, :2, 1] = [1, 2], [3, 4]
  lengths = np.int32([[3, 2], [2, 3], [2, 2]])
  train = data_lib.Dataset(tok, lengths, np.int32([1, 0, 1]))
  kept, dropped = data_lib.deduplicate(train, train.take(np.arange(2, 3)))
  assert dropped == 2 and len(kept) == 1  # the flipped repeat, and the row in test


def test_a_method_without_a_seed_in_common_with_its_reference_is_not_compared():
  right = {f"k{i}": np.ones(8, bool) for i in range(6)}

  def row(loss, seed, offset):
    return {"task": "t", "data_key": "d", "weak": "w", "strong": "s", "loss": loss, "seed": seed,
            "predict_keys": {n: f"k{offset + i}" for i, n in enumerate(("weak", "student",
                                                                            "ceiling"))}}
  rows = [row("xent", 0, 0), row("logconf", 1, 3)]
  out = paired.comparisons(rows, lambda kind, key: right[key], report.method_label, samples=20)
  assert out["methods"] == []
  rows.append(row("logconf", 0, 3))
  (c,) = paired.comparisons(rows, lambda kind, key: right[key], report.method_label,
                            samples=20)["methods"]
  assert (c["method"], c["against"], c["seeds"]) == ("logconf", "xent", 1)
