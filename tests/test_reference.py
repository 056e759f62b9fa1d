"""Differential test against the reference semantics (openai/weak-to-strong, PyTorch).

tests/reference_torch.py re-implements the reference training loop in plain PyTorch on
transformers models. Both sides start from the same weights (w2s_jax's initial parameters,
exported with `hf.export`), see the same rows at every step (`batch_indices`) and run in fp32:
  1. a weak model (tiny-1, GPT-2 family) fine-tuned on split A's ground truth with xent;
  2. its soft predictions on split B (computed by w2s_jax, the same array fed to both sides);
  3. a student (tiny-llama-2, Llama family, another seed) fine-tuned on them with logconf
     (alpha_max 0.75, linear warmup over 20% of the steps), with w2s_jax accumulating gradients
     over 2 micro-batches (the threshold over the whole batch) and torch taking one batch.
Per-step losses must agree within 1e-4 and the final predictions too (argmax and probabilities).
"""
import jax
import numpy as np
import pytest
import torch

from tests import reference_torch as ref
from w2s_jax import losses, sharding, train
from w2s_jax.data import dataset as data_lib
from w2s_jax.models import hf as hf_lib, model_config

STEPS = 24  # optimizer steps of each stage: the logconf warmup spans 0.2 * 24 = 4.8 of them
BATCH = 32
LR = 1e-3
LOGCONF = {"alpha_max": 0.75, "warmup_frac": 0.2}
LOSS_ATOL = 1e-4  # per-step loss, fp32
PROB_ATOL = 1e-4  # final probabilities, fp32


@pytest.fixture(scope="module")
def runs(small_task, tmp_path_factory):
  """Both pipelines, run once: {name: (w2s_jax result, torch result)}."""
  cfg, splits = small_task
  torch.manual_seed(0)
  torch.set_num_threads(2)
  mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  out = {}

  def stage(name, size, seed, ds, targets, loss, loss_hp, micro):
    tcfg = cfg.train.copy_and_resolve_references()
    tcfg.batch_size, tcfg.micro_batch_size, tcfg.log_every = BATCH, micro, 1
    tr = train.Trainer(model_config(size, 259), 2, mesh, sharding.DEFAULT_RULES)
    init = tr.init_params(seed)
    folder = str(tmp_path_factory.mktemp(name))
    hf_lib.export(tr.model_cfg, init, folder)  # the INITIAL weights: both sides start equal
    with jax.default_matmul_precision("highest"):  # fp32 parity (TF32 on a GPU otherwise)
      feats = tr.predict(init, splits.test, 64, tcfg.buckets, what="features")
      fit = train.fit(tr, init, ds, targets, objective="soft", loss_name=loss, loss_hp=loss_hp,
                      tcfg=tcfg, lr=LR, seed=seed, steps=STEPS)
      probs = {k: tr.predict(fit.params, d, 64, tcfg.buckets) for k, d in
               (("test", splits.test), ("b", splits.b))}
    model = ref.TransformerWithHead(folder)
    t_feats = ref.features(model, splits.test.tokens, splits.test.lengths)
    t_losses = ref.train_model(model, ds.tokens, ds.lengths, targets, nsteps=STEPS,
                               batch_size=BATCH, lr=LR, loss=loss, seed=seed, loss_hp=loss_hp)
    t_probs = {k: ref.predict(model, d.tokens, d.lengths) for k, d in
               (("test", splits.test), ("b", splits.b))}
    out[name] = dict(jax=dict(losses=np.array([h["loss"] for h in fit.history]),
                              steps=[h["step"] for h in fit.history], probs=probs, feats=feats),
                     torch=dict(losses=t_losses, probs=t_probs, feats=t_feats))

  stage("weak", "tiny-1", 0, splits.a, data_lib.one_hot(splits.a.labels, 2), "xent", {}, 0)
  weak_labels = out["weak"]["jax"]["probs"]["b"]  # w2s_jax's soft labels, fed to both sides
  stage("student", "tiny-llama-2", 1, splits.b, weak_labels, "logconf", LOGCONF, BATCH // 2)
  return out


@pytest.mark.parametrize("name", ["weak", "student"])
def test_initial_features_agree(runs, name):
  """The exported starting point: last-real-token features equal before any training."""
  r = runs[name]
  np.testing.assert_allclose(r["jax"]["feats"], r["torch"]["feats"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["weak", "student"])
def test_per_step_losses_agree(runs, name):
  r = runs[name]
  ours, theirs = r["jax"]["losses"], r["torch"]["losses"]
  assert r["jax"]["steps"] == list(range(STEPS)) and len(theirs) == STEPS >= 20
  assert ours[0] == pytest.approx(np.log(2), abs=1e-6)  # zero head: p = 0.5 at step 0
  diff = np.abs(ours - theirs)
  print(f"{name}: loss {ours[0]:.4f} -> {ours[-1]:.4f}; max |diff| {diff.max():.2e} "
        f"at step {diff.argmax()}")
  np.testing.assert_allclose(ours, theirs, atol=LOSS_ATOL, rtol=0)
  assert ours[-3:].mean() < ours[0] - 0.05  # it trained: the comparison is not of constants


@pytest.mark.parametrize("name", ["weak", "student"])
def test_final_predictions_agree(runs, name):
  r = runs[name]
  for split in ("test", "b"):
    ours, theirs = r["jax"]["probs"][split], r["torch"]["probs"][split]
    diff = np.abs(ours - theirs).max()
    print(f"{name} on {split}: max |p diff| {diff:.2e}, "
          f"min |p0 - 0.5| {np.abs(ours[:, 0] - 0.5).min():.2e}")
    np.testing.assert_allclose(ours, theirs, atol=PROB_ATOL, rtol=0)
    np.testing.assert_array_equal(ours.argmax(-1), theirs.argmax(-1))


def test_logconf_alpha_warms_up_over_several_steps():
  """The student's confidence weight really ramps across steps of this test (0 .. 0.75)."""
  alphas = [float(losses.warmup_alpha(s / STEPS, **LOGCONF)) for s in range(STEPS)]
  ramp = [a for a in alphas if 0 < a < LOGCONF["alpha_max"]]
  assert alphas[0] == 0 and len(ramp) >= 4 and alphas[-1] == LOGCONF["alpha_max"]
