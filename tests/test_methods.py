"""The field's methods (w2s_jax/methods.py) against NumPy references on hand-made cases, and
every method end to end through the tiny variant."""
import json

import numpy as np
import pytest

from w2s_jax import config as config_lib, experiment, methods
from w2s_jax.data import dataset as data_lib
from w2s_jax.errors import ConfigError

HP = dict(contamination=0.25, knn_k=2, logreg_l2=1e-3, topo_k_cc=2, topo_k_zeta=2,
          target_acc=0.75, quirk_share=0.25)


def _soft(p1):
  p1 = np.asarray(p1, np.float64)
  return np.stack([1 - p1, p1], -1)


# Two clusters on a line; row 2 sits in the left cluster with the right cluster's label.
X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0], [13.0], [3.0]])
Y = _soft([0.1, 0.0, 0.9, 1.0, 0.8, 1.0, 0.9, 0.2])


def test_neighbours_leave_out_the_row_itself_and_break_ties_to_the_lower_index():
  nb = methods.neighbours(X, 2)
  assert nb[0].tolist() == [1, 2]
  assert nb[1].tolist() == [0, 2]  # 0 and 2 tie at distance 1: both, lower first
  assert nb[3].tolist() == [4, 5]
  assert all(i not in nb[i] for i in range(len(X)))


def test_knn_relabel_is_the_mean_of_the_neighbours_labels():
  got = methods.FILTERS["knn_relabel"](X, Y, HP)
  ref = np.stack([Y[[j for j in np.argsort(np.abs(X[:, 0] - X[i, 0]), kind="stable")
                     if j != i][:2]].mean(0) for i in range(len(X))])
  np.testing.assert_allclose(got[0], ref)
  assert got[1].all()


def test_knn_filter_drops_the_share_that_disagrees_most_with_its_neighbours():
  labels, keep = methods.FILTERS["knn_filter"](X, Y, HP)
  np.testing.assert_array_equal(labels, Y)  # a filter keeps the labels it keeps
  # disagreement |p1 - mean of the neighbours' p1|, int(0.25 * 8) = 2 dropped
  p1 = Y[:, 1]
  dis = np.array([abs(p1[i] - p1[methods.neighbours(X, 2)[i]].mean()) for i in range(len(X))])
  dropped = set(np.argsort(-dis, kind="stable")[:2])
  assert set(np.flatnonzero(~keep)) == dropped and 2 in dropped


def test_logreg_relabel_is_the_penalised_optimum_of_the_soft_labels():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(60, 3))
  y = _soft(1 / (1 + np.exp(-(2 * x[:, 0] - x[:, 1]))))
  p = methods.logreg_labels(x, y, 1e-2)
  # At the optimum the gradient of mean CE + l2 |W|^2 vanishes (standardised features).
  xs = (x - x.mean(0)) / (x.std(0) + 1e-6)
  logit_gap = np.log(p[:, 1]) - np.log(p[:, 0])
  w = np.linalg.lstsq(np.c_[xs, np.ones(60)], logit_gap, rcond=None)[0]  # recover W1 - W0, b
  grad_w = xs.T @ (p - y) / 60
  assert np.abs(grad_w[:, 1] - grad_w[:, 0] + 2e-2 * w[:3]).max() < 1e-3
  assert np.corrcoef(p[:, 1], y[:, 1])[0, 1] > 0.95


def test_topo_component_keeps_each_class_largest_strong_component():
  keep = methods.topo_component(X, Y, 2)
  # Row 2 (class 1) points only at class-0 rows: no edge of its own class, its own component.
  assert not keep[2]
  assert keep[[3, 4, 5, 6]].all() and keep[[0, 1]].all()


def test_topo_filter_removes_exactly_the_contamination_share_when_the_component_leaves_room():
  _, keep = methods.FILTERS["topo_filter"](X, Y, {**HP, "contamination": 0.25})
  assert (~keep).sum() == 2 and not keep[2]
  _, keep = methods.FILTERS["topo_filter"](X, Y, {**HP, "contamination": 0.0})
  assert (~keep).sum() == 2  # the components alone remove more than asked: never put back


def test_label_quality_counts_the_kept_rows_against_the_truth():
  old = _soft([0.9, 0.9, 0.1, 0.1])
  new = _soft([0.9, 0.1, 0.1, 0.1])
  truth = np.array([1, 1, 0, 1])
  keep = np.array([True, True, True, False])
  q = methods.label_quality(old, new, keep, truth)
  # kept rows' new labels: right, wrong, right -> 2/3; right before: rows 0, 1, 2, of which
  # kept with a right label: 0 and 2 -> 2/3
  assert q == {"kept": 0.75, "weak_acc": 0.75, "precision": pytest.approx(2 / 3),
               "recall": pytest.approx(2 / 3), "changed": pytest.approx(1 / 3)}


def test_controlled_supervisors_are_right_where_they_say():
  rng = np.random.default_rng(0)
  n = 40
  tokens = np.zeros((n, 8), np.int32)
  lengths = np.arange(1, n + 1, dtype=np.int32) % 8 + 1
  ds = data_lib.Dataset(tokens, lengths, rng.integers(0, 3, n).astype(np.int32))
  lab = methods.target_acc_labels(ds, 3, HP, np.random.default_rng(1))
  assert (lab.argmax(-1) == ds.labels).sum() == 30  # exactly round(0.75 * 40)
  lab = methods.quirky_labels(ds, 3, HP, np.random.default_rng(1))
  wrong = lab.argmax(-1) != ds.labels
  longest = set(np.argsort(-lengths, kind="stable")[:10])
  assert set(np.flatnonzero(wrong)) == longest


def test_ensembles_combine_by_mean_vote_or_route():
  a, b, c = _soft([0.9, 0.4]), _soft([0.6, 0.2]), _soft([0.2, 0.3])
  np.testing.assert_allclose(methods.combine([a, b, c], "mean"), (a + b + c) / 3)
  np.testing.assert_allclose(methods.combine([a, b, c], "vote")[:, 1], [2 / 3, 0])
  np.testing.assert_allclose(methods.combine([a, b, c], "mean", np.array([2, 0])),
                             np.stack([c[0], a[1]]))
  rows = np.arange(100, 110)
  bags = methods.bag_rows(rows, 3, seed=1, data_seed=0)
  assert all(len(g) == 10 and set(g) <= set(rows) for g in bags)
  assert len({tuple(g) for g in bags}) == 3


def test_kmeans_routes_separated_clusters_apart():
  rng = np.random.default_rng(0)
  x = np.r_[rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))]
  near = methods.route(x, methods.kmeans(x, 2, seed=0))
  assert len(set(near[:20])) == 1 and len(set(near[20:])) == 1 and near[0] != near[20]


def test_method_configs_are_checked(nlp_config):
  c = nlp_config("methods_tiny")
  config_lib.validate(c, 8)
  bad = nlp_config("methods_tiny")
  bad.methods.filters = ("knn", )
  with pytest.raises(ConfigError, match="methods.filters"):
    config_lib.validate(bad, 8)
  bad = nlp_config("methods_tiny")
  bad.losses = ("logconf",)
  with pytest.raises(ConfigError, match="'losses'.*xent"):
    config_lib.validate(bad, 8)
  bad = nlp_config("methods_tiny")
  bad.task.name = "synthetic-pairs"
  with pytest.raises(ConfigError, match="'methods'.*classification"):
    config_lib.validate(bad, 8)


@pytest.mark.slow
def test_every_method_runs_and_is_paired_against_naive_xent(tmp_path, nlp_config):
  c = nlp_config("methods_tiny")
  rows = experiment.run(c, str(tmp_path))
  res = json.loads((tmp_path / "results.json").read_text())
  by = {(r["weak"], r.get("method") or "", r["loss"]): r for r in rows}
  weak = rows[0]["weak"] if rows[0]["weak"] == "tiny-1" else "tiny-1"
  sups = [methods.supervisor_name(n, c.methods.to_dict()) for n in c.methods.supervisors]
  for name in c.methods.filters:
    for w in [weak] + sups:
      assert (w, name, "xent") in by
  for kind in c.methods.ensembles:
    r = by[(weak, kind, "xent")]
    assert r["supervisor"].startswith(f"2 {kind}")
    assert "misfit_gain" in r  # measured against the ensemble, its actual supervisor
  for loss in c.losses:
    assert (weak, "", loss) in by
  # a controlled supervisor is the row's weak model: its test score is its target accuracy
  assert by[(sups[0], "", "xent")]["weak_acc"] == pytest.approx(0.7, abs=0.01)
  # every method is compared with naive xent on the same supervisor's labels
  compared = {(m["weak"], m["method"]) for m in res["paired"]["methods"]}
  for name in (*c.methods.filters, *c.methods.ensembles):
    assert (weak, f"{name} xent") in compared
  for name in c.methods.filters:
    assert (sups[1], f"{name} xent") in compared
  # a filter's student never sees the rows it drops: fewer optimizer steps than naive xent
  q = by[(weak, "knn_filter", "xent")]["label_quality"]
  assert q["kept"] == pytest.approx(0.9, abs=0.01)
  from w2s_jax import stages  # noqa: PLC0415
  store = stages.StageStore(str(tmp_path))
  steps = {m: store.metrics("train", by[(weak, m, "xent")]["stage_keys"]["student"])["steps"]
           for m in ("", "knn_filter", "knn_relabel")}
  assert steps["knn_filter"] < steps[""] == steps["knn_relabel"]


def test_specialists_smaller_than_a_batch_are_refused_naming_the_key(tmp_path, nlp_config):
  c = nlp_config("methods_tiny")
  c.methods.update(filters=(), supervisors=(), ensembles=("specialists",), n_supervisors=16)
  c.train.batch_size = 64
  with pytest.raises(ConfigError, match="'methods.n_supervisors'.*below a batch"):
    experiment.run(c, str(tmp_path))


@pytest.mark.parametrize("scope", ["split", "batch_order"])
def test_ensemble_students_of_every_seed_share_a_recipe(tmp_path, nlp_config, scope):
  """Clusters hold other row counts in every seed: the students still pool over the seeds. With
  seed_scope batch_order the seeds share one draw of the members' rows, as they share A."""
  from w2s_jax import experiment  # noqa: PLC0415
  c = nlp_config("methods_tiny")
  c.methods.update(filters=(), supervisors=())
  c.seeds, c.seed_scope = (0, 1), scope
  _, graph, (b,) = experiment.plan(c, str(tmp_path))
  members = [{n: r.tolist() for n, r in b.data.rows(s).items() if "~" in n} for s in (0, 1)]
  assert len(members[0]) == 4 and (members[0] == members[1]) == (scope == "batch_order")
  stages = list(graph)
  for kind in ("bagged", "specialists"):
    preds = {st.label: st for st in stages
             if st.kind == "predict" and st.label.startswith("predict:student:")
             and f":{kind}:" in st.label and st.label.endswith(":test")}
    (a, sa), (b, sb) = sorted(preds.items())
    assert a.replace(":s0:", ":s1:") == b and sa.key != sb.key and sa.recipe == sb.recipe
