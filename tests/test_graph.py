"""The experiment graph: each model trained once across a sweep, plans without running, added
evaluations as predict stages only, results pooled over a whole workdir, the report and figures."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from w2s_jax import config as config_lib, experiment, graph, report, results, stages, sweep
from w2s_jax.settings import chess as chess_setting
from w2s_jax.errors import ConfigError
from w2s_jax.graph import Output, Stage
from tests.conftest import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sweep(nlp_config):
  cfg = nlp_config("sweep_tiny")
  cfg.task.n_train, cfg.task.n_test = 384, 128
  cfg.train.update(epochs=1.0, batch_size=32, eval_batch_size=128, log_every=100)
  cfg.bootstrap_samples = 100
  return cfg


def _executed(workdir, cfg):
  rt, g, builders = experiment.plan(cfg, str(workdir))
  todo = sum(not rt.store.done(s.kind, s.key) for s in g if s.kind == "train")
  stats = graph.execute(g, rt.store)
  rows = [r for b in builders for r in b.rows()]
  results.write_results(str(workdir), rows, rt.store, samples=cfg.bootstrap_samples)
  return todo, stats, rows


@pytest.mark.slow
def test_a_tiny_sweep_trains_each_model_once(tmp_path, nlp_config):
  cfg = _sweep(nlp_config)
  configs = sweep.expand(cfg)
  assert [(c.weak.size, c.strong.size) for c in configs] == [
      ("tiny-1", "tiny-llama-2"), ("tiny-1", "tiny-2"), ("tiny-llama-2", "tiny-2")]
  todo, stats, rows = _executed(tmp_path, cfg)
  # Per seed: 3 models on A's ground truth (supervisors and ceilings alike) + 3 pairs x 2 losses.
  assert todo == stats["ran"]["train"] == 2 * (3 + 6)
  assert len(rows) == 3 * 2 * 2
  by = {(r["weak"], r["strong"], r["loss"], r["seed"]): r for r in rows}
  # The middle model is the supervisor of one pair and the ceiling of another: one stage.
  assert by[("tiny-llama-2", "tiny-2", "xent", 0)]["stage_keys"]["weak"] == \
      by[("tiny-1", "tiny-llama-2", "xent", 0)]["stage_keys"]["ceiling"]
  again_todo, again, _ = _executed(tmp_path, cfg)
  assert again_todo == 0 and again["ran"] == {} and again["cached"] == again["stages"]
  results = json.loads((tmp_path / "results.json").read_text())
  assert len(results["runs"]) == 12 and {p["seeds"] for p in results["pooled"]} == {2}


@pytest.mark.slow
def test_plan_runs_nothing_and_an_extra_eval_set_adds_predict_stages_only(tmp_path, nlp_config):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 320, 64, 1.0
  cfg.losses = ("xent",)
  rt, g, _ = experiment.plan(cfg, str(tmp_path))
  assert g.counts() == {"train": 3, "predict": 4}
  assert not any(rt.store.done(s.kind, s.key) for s in g)
  assert "7 stages: 0 cached, 7 to run (4 predict, 3 train)" in graph.plan_table(g, rt.store)
  assert os.listdir(tmp_path / "stages") == []  # planning trained nothing
  graph.execute(g, rt.store)
  cfg.eval_tasks = ("synthetic",)
  _, g2, _ = experiment.plan(cfg, str(tmp_path))
  todo = [s.kind for s in g2 if not rt.store.done(s.kind, s.key)]
  assert todo == ["predict"] * 3  # weak, ceiling, student on the new set


@pytest.mark.slow
def test_legal_mask_adds_predict_stages_only(tmp_path, chess_config):
  cfg = chess_config("tiny")
  cfg.chess.update(n_test=64, n_weak_train=128, n_transfer=128)
  cfg.chess.corpus.n_positions = 600
  cfg.ladder = config_lib.ladder(cfg.ladder.m1, cfg.ladder.m2)
  cfg.train.epochs = 1.0
  rt, g, _ = experiment.plan(cfg, str(tmp_path))
  graph.execute(g, rt.store)
  cfg.chess.legal_mask = not cfg.chess.legal_mask  # scoring with or without the mask
  _, g2, _ = experiment.plan(cfg, str(tmp_path))
  todo = {s.kind for s in g2 if not rt.store.done(s.kind, s.key)}
  assert todo == {"predict"}


@pytest.mark.slow
@pytest.mark.asset
def test_chess_learning_rate_follows_the_reference_rule(tmp_path, chess_config):
  cfg = chess_config("tiny")
  cfg.chess.update(n_test=32, n_weak_train=64, n_transfer=64)
  cfg.ladder = config_lib.ladder(*(config_lib.rung_spec(s, pretrain_steps=n) for s, n in
                                   (("tiny-1", 10), ("tiny-2", 20), ("tiny-2", 40))))
  from w2s_jax.chess import encoding  # noqa: PLC0415
  from w2s_jax.models import model_config, param_count  # noqa: PLC0415
  small, large = (param_count(model_config(s, encoding.VOCAB_SIZE)) for s in ("tiny-1", "tiny-2"))
  cfg.train.update(lr=1e-3, lr_large=2e-4, large_model_params=(small + large) // 2)
  _, g, _ = experiment.plan(cfg, str(tmp_path))
  lrs = {s.label.split(":")[1]: s.spec["lr"] for s in g if s.kind == "train"}
  assert lrs == {"M1": 1e-3, "M2": 2e-4, "M3": 2e-4}
  cfg.ladder.m3.lr = 5e-4  # a rung's own lr wins
  _, g, _ = experiment.plan(cfg, str(tmp_path))
  assert {s.spec["lr"] for s in g if s.kind == "train" and s.label.split(":")[1] == "M3"} == {5e-4}


MODULES = sorted(
    os.path.relpath(os.path.join(d, f), ROOT)[:-3].replace(os.sep, ".")
    for d, _, fs in os.walk(os.path.join(ROOT, "w2s_jax")) for f in fs
    if f.endswith(".py") and f != "__main__.py")


@pytest.mark.slow
def test_every_module_imports_first():
  """Each module of the package as the first import of a fresh interpreter (no import cycle)."""
  procs = {m: subprocess.Popen([sys.executable, "-c", f"import {m.removesuffix('.__init__')}"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
           for m in MODULES}
  failed = {m: p.communicate(timeout=300)[1][-500:] for m, p in procs.items()}
  assert {m: e for m, e in failed.items() if procs[m].returncode} == {}


@pytest.mark.slow
def test_two_invocations_pool_over_the_workdir_and_the_report_redraws_it(tmp_path, nlp_config):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 320, 128, 1.0
  cfg.losses, cfg.bootstrap_samples = ("xent",), 100
  for seed in (0, 1):  # two invocations, one seed each
    cfg.seeds = (seed,)
    experiment.run(cfg, str(tmp_path))
  results = json.loads((tmp_path / "results.json").read_text())
  assert [r["seed"] for r in results["runs"]] == [0, 1]
  (pool,) = results["pooled"]
  assert pool["seeds"] == 2 and pool["seed_list"] == [0, 1]
  assert pool["weak_acc"] == pytest.approx(np.mean([r["weak_acc"] for r in results["runs"]]))
  (tmp_path / "results.json").write_text('{"runs": [')  # damaged: rebuilt from the rows
  out = subprocess.run([sys.executable, "-m", "w2s_jax.report", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.startswith(report.tables(results))
  assert json.loads((tmp_path / "results.json").read_text())["runs"] == results["runs"]
  for name in ("accuracy_synthetic.png", "pgr_vs_gap.png", "curves.png"):
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({name})" in (tmp_path / "report.md").read_text()


def test_graph_deduplicates_and_keeps_dependency_order(tmp_path):
  store = stages.StageStore(str(tmp_path))
  calls = []
  make = lambda name, spec, deps=(): Stage(  # noqa: E731
      "predict", spec, name, lambda: calls.append(name) or Output(arrays={"x": np.ones(2)}), deps)
  g = graph.Graph()
  a = g.add(make("a", {"x": 1}))
  assert g.add(make("a again", {"x": 1})) is a
  g.add(make("b", {"x": 2, "a": a.key}, (a,)))
  with pytest.raises(ValueError, match="before its upstream"):
    g.add(make("c", {"x": 3}, (make("orphan", {"x": 4}),)))
  assert graph.execute(g, store)["ran"] == {"predict": 2} and calls == ["a", "b"]
  assert graph.execute(g, store)["ran"] == {} and calls == ["a", "b"]


def test_a_recipe_is_the_key_without_the_run_seed():
  noop = lambda: Output()  # noqa: E731
  pre = {s: Stage("pretrain", {"seed": s}, "p", noop) for s in (0, 1)}  # not a run seed
  assert pre[0].recipe != pre[1].recipe

  def chain(seed, lr=1e-3, pretrain=pre[0]):
    fit = Stage("train", {"seed": seed, "lr": lr, "init": pretrain.key}, "t", noop, (pretrain,),
                seed=seed)
    return Stage("predict", {"train": fit.key, "data": "k"}, "p", noop, (fit,))
  assert chain(0).key != chain(1).key and chain(0).recipe == chain(1).recipe
  assert chain(0).recipe != chain(0, lr=3e-4).recipe  # another config
  assert chain(0).recipe != chain(0, pretrain=pre[1]).recipe  # upstream, by its recipe


def test_rows_of_several_recipes_pool_apart_and_are_labelled(tmp_path):
  rows = [{"id": f"t|{seed}|{recipe}", "pool": "t", "recipe": recipe, "seed": seed,
           "config": {"train.lr": lr, "train.log_every": 10, "seeds": None}}
          for recipe, lr in (("r1", 1e-3), ("r2", 3e-4)) for seed in (0, 1)]
  rows.append({"id": "u|0|r3", "pool": "u", "recipe": "r3", "seed": 0, "config": {}})
  results.label_variants(rows)
  assert [r["variant"] for r in rows] == ["train.lr=0.001"] * 2 + ["train.lr=0.0003"] * 2 + [""]
  same = [dict(r, config={}) for r in rows[:4]]  # equal configs: other code or data
  results.label_variants(same)
  assert {r["variant"] for r in same} == {"recipe r1", "recipe r2"}
  # A key the defaults gained after some rows were written labels nothing.
  newer = [dict(r, config={**r["config"], "seed_scope": "split"}) if r["recipe"] == "r2"
           else r for r in rows[:4]]
  results.label_variants(newer)
  assert [r["variant"] for r in newer] == ["train.lr=0.001"] * 2 + ["train.lr=0.0003"] * 2
  (tmp_path / "rows").mkdir()
  for i, r in enumerate(rows[:2] + [{"id": "old|0", "pool": "old", "seed": 0}]):
    (tmp_path / "rows" / f"{i}.json").write_text(json.dumps(r))
  assert [r["id"] for r in results.load_rows(str(tmp_path))] == ["t|0|r1", "t|1|r1"]


def test_chess_zero_shot_lines_once_per_distinct_pretraining():
  run = lambda variant, acc: {"setting": "chess", "chance": 0.06, "variant": variant,  # noqa: E731
                              "zero_shot": {"M2": {"masked": acc, "unmasked": 0.01}}}
  same = chess_setting.zero_shot_lines([run("train.lr=0.001", 0.25), run("train.lr=0.0003", 0.25)])
  assert same == ["zero-shot M2: masked 0.250, unmasked 0.010; a random legal move 0.060"]
  apart = chess_setting.zero_shot_lines([run("chess.pretrain.seed=0", 0.25),
                                  run("chess.pretrain.seed=1", 0.1)])
  assert apart[0].startswith("zero-shot M2 [chess.pretrain.seed=0]: masked 0.250")
  assert apart[1].startswith("zero-shot M2 [chess.pretrain.seed=1]: masked 0.100")
  assert "below twice that" in apart[1] and "top rung [chess.pretrain.seed=1]" in apart[2]


@pytest.mark.parametrize("key,values", [("mesh.fsdp", (1, 2)), ("seeds", ((0,), (1,))),
                                        ("rules", ((), ()))])
def test_a_grid_over_a_key_fixed_per_invocation_is_refused(key, values, nlp_config):
  cfg = nlp_config("tiny")
  cfg.sweep.grid = (("train.lr", (1e-3,)), (key, values))
  with pytest.raises(ConfigError, match=f"'sweep.grid': '{key}' cannot vary by grid point"):
    sweep.expand(cfg)


@pytest.mark.slow
def test_a_grid_over_the_learning_rate_keeps_each_point(tmp_path, nlp_config):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 320, 64, 1.0
  cfg.losses, cfg.bootstrap_samples, cfg.seeds = ("xent",), 100, (0, 1)
  cfg.sweep.grid = (("train.lr", (1e-3, 3e-4)),)
  experiment.run(cfg, str(tmp_path))
  cfg.sweep.grid, cfg.train.lr, cfg.seeds = (), 1e-3, (2,)  # one more seed of one point
  experiment.run(cfg, str(tmp_path))
  results = json.loads((tmp_path / "results.json").read_text())
  assert len(results["runs"]) == 5
  assert sorted((p["variant"], p["seed_list"]) for p in results["pooled"]) == [
      ("train.lr=0.0003", [0, 1]), ("train.lr=0.001", [0, 1, 2])]
  text = report.tables(results)
  assert "xent [train.lr=0.001]" in text and "xent [train.lr=0.0003]" in text



@pytest.mark.slow
def test_a_workdir_that_cannot_be_written_is_one_line(tmp_path):
  proc = run_main("--config=configs/nlp.py:tiny", "--workdir=/proc/w2s_cannot_write_here")
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith("workdir error: --workdir=/proc/")
