"""Each loss against a NumPy reference written here, plus the properties the paper relies on."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from w2s_jax import losses


def np_softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def np_ce(logits, target):
  logp = np.log(np_softmax(logits))
  return -(target * logp).sum(-1)


@pytest.fixture
def batch():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(32, 2)).astype(np.float32) * 2
  p1 = rng.uniform(0.05, 0.95, size=32).astype(np.float32)
  y = np.stack([1 - p1, p1], -1)
  return logits, y


def test_xent_matches_numpy(batch):
  logits, y = batch
  np.testing.assert_allclose(losses.get("xent")(logits, y), np_ce(logits, y).mean(), rtol=1e-5)


def test_kl_matches_numpy_and_has_xent_gradients(batch):
  logits, y = batch
  ref = (y * (np.log(y) - np.log(np_softmax(logits)))).sum(-1).mean()
  np.testing.assert_allclose(losses.get("kl")(logits, y), ref, rtol=1e-5)
  g_kl = jax.grad(lambda z: losses.get("kl")(z, y))(logits)
  g_ce = jax.grad(lambda z: losses.get("xent")(z, y))(logits)
  np.testing.assert_allclose(g_kl, g_ce, atol=1e-6)


def np_logconf(logits, y, step_frac, alpha_max, warmup_frac):
  p = np_softmax(logits)
  q = y[:, 1].mean()
  t = np.quantile(p[:, 0], q)
  hard1 = (p[:, 0] < t).astype(np.float32)
  hard = np.stack([1 - hard1, hard1], -1)
  a = alpha_max * min(1.0, step_frac / warmup_frac)
  return np_ce(logits, (1 - a) * y + a * hard).mean()


@pytest.mark.parametrize("step_frac", [0.0, 0.05, 0.1, 0.2, 0.7, 1.0])
def test_logconf_matches_numpy(batch, step_frac):
  logits, y = batch
  got = losses.get("logconf")(logits, y, step_frac, alpha_max=0.75, warmup_frac=0.2)
  np.testing.assert_allclose(got, np_logconf(logits, y, step_frac, 0.75, 0.2), rtol=1e-5)


def test_logconf_warmup_is_linear_without_jump():
  fracs = np.linspace(0, 1, 101)
  a = np.array([float(losses.warmup_alpha(f, 0.75, 0.2)) for f in fracs])
  np.testing.assert_allclose(a, 0.75 * np.minimum(1, fracs / 0.2), atol=1e-6)
  # The reference code ramps to 0.1 * a_max and then jumps: no step may exceed the linear slope.
  assert np.max(np.diff(a)) <= 0.75 / 0.2 * 0.01 + 1e-6
  assert a[0] == 0 and a[-1] == pytest.approx(0.75)


@pytest.mark.parametrize("prior", [0.5, 0.25, 0.8])
def test_threshold_matches_weak_label_balance(prior):
  rng = np.random.default_rng(1)
  probs = np_softmax(rng.normal(size=(200, 2)) + [1.0, 0.0])  # student skewed to class 0
  hard = np.asarray(losses.harden(jnp.log(jnp.asarray(probs)), jnp.asarray([1 - prior, prior])))
  assert abs(hard[:, 1].mean() - prior) <= 1 / 200 + 1e-9
  # Hardened-to-1 examples are those with the lowest p[:, 0].
  assert probs[hard[:, 1] == 1, 0].max() <= probs[hard[:, 1] == 0, 0].min()


def test_multiclass_hardening_matches_prior():
  rng = np.random.default_rng(2)
  probs = np_softmax(rng.normal(size=(300, 3)) + [2.0, 0.0, 0.0])
  prior = np.array([0.2, 0.3, 0.5])
  hard = np.asarray(losses.harden(jnp.log(jnp.asarray(probs)), jnp.asarray(prior)))
  assert (hard.sum(1) == 1).all()
  np.testing.assert_allclose(hard.mean(0), prior, atol=0.03)


def test_product_matches_numpy(batch):
  logits, y = batch
  p = np_softmax(logits)
  t = y ** 1.5 * p ** 0.5
  t /= t.sum(-1, keepdims=True)
  got = losses.get("product")(logits, y, alpha=1.5, beta=0.5)
  np.testing.assert_allclose(got, np_ce(logits, t).mean(), rtol=1e-5)


@pytest.mark.parametrize("radius", [-1.0, 0.2])
def test_window_matches_numpy(batch, radius):
  logits, y = batch
  p = np_softmax(logits)
  r = np.median(np.abs(y[:, 1] - 0.5)) if radius < 0 else radius
  mask = p.max(-1) < 0.5 + r
  assert 0 < mask.sum() < len(mask)
  got = losses.get("window")(logits, y, radius=radius)
  np.testing.assert_allclose(got, np_ce(logits, y)[mask].mean(), rtol=1e-5)


def test_entropy_matches_numpy_and_is_not_rescaled_xent(batch):
  logits, y = batch
  p = np_softmax(logits)
  ref = (np_ce(logits, y) - 0.3 * (p * np.log(p)).sum(-1)).mean()
  loss = losses.get("entropy")
  np.testing.assert_allclose(loss(logits, y, entropy_weight=0.3), ref, rtol=1e-5)
  # Its gradient is not a multiple of xent's (the flawed public variant's is (1-c)(p - y)).
  g = np.asarray(jax.grad(lambda z: loss(z, y, entropy_weight=0.3))(logits)).ravel()
  g_ce = np.asarray(jax.grad(lambda z: losses.get("xent")(z, y))(logits)).ravel()
  cos = g @ g_ce / np.linalg.norm(g) / np.linalg.norm(g_ce)
  assert cos < 0.999
  # Where the target equals the prediction (xent's gradient is 0) the entropy term still pushes
  # the leaning class up: minimising entropy sharpens the student.
  z = jnp.array([[1.0, 0.0]])
  g1 = jax.grad(lambda z: loss(z, jax.nn.softmax(z), entropy_weight=1.0))(z)
  assert g1[0, 0] < 0 and g1[0, 1] > 0


def test_losses_jit_and_registry():
  assert set(losses.LOSSES) == {"xent", "kl", "logconf", "product", "window", "entropy",
                                "logconf_balanced", "reverse_xent", "reverse_kl"}
  f = jax.jit(lambda z, y, s: losses.get("logconf")(z, y, s, alpha_max=0.5, warmup_frac=0.2))
  z = jnp.zeros((8, 2))
  y = jnp.full((8, 2), 0.5)
  assert np.isfinite(float(f(z, y, 0.5)))
  with pytest.raises(KeyError, match="unknown loss"):
    losses.get("nope")


def test_reverse_losses_match_numpy_and_differ_by_the_students_entropy(batch):
  logits, y = batch
  p, floor = np_softmax(logits.astype(np.float64)), 1e-4
  rxent = -(p * np.log(np.clip(y, floor, None))).sum(-1).mean()
  rkl = (p * (np.log(p) - np.log(np.clip(y, floor, None)))).sum(-1).mean()
  np.testing.assert_allclose(losses.get("reverse_xent")(logits, y, floor=floor), rxent, rtol=1e-5)
  np.testing.assert_allclose(losses.get("reverse_kl")(logits, y, floor=floor), rkl, rtol=1e-5)
  # reverse KL is 0, with no gradient, where the student already says the weak label
  z = np.log(y).astype(np.float32)
  assert abs(float(losses.get("reverse_kl")(z, y))) < 1e-6
  np.testing.assert_allclose(jax.grad(lambda q: losses.get("reverse_kl")(q, y))(z), 0, atol=1e-6)
  # a hard label is floored: mass on its wrong class costs -log(floor), not infinity
  hard = np.array([[1.0, 0.0]], np.float32)
  wrong = np.array([[0.0, 30.0]], np.float32)
  assert np.isclose(float(losses.get("reverse_xent")(wrong, hard, floor=floor)), -np.log(floor),
                    rtol=1e-4)


def test_logconf_balanced_centres_the_weak_log_odds_and_hardens_at_the_median():
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(16, 2)).astype(np.float32)
  p1 = rng.uniform(0.55, 0.95, size=16)  # every weak label leans to class 1
  y = np.stack([1 - p1, p1], -1).astype(np.float32)
  alpha = 0.75
  # NumPy reference: centre log y per class over the batch, softmax; hard labels split 50/50
  # at the median of the student's margin z0 - z1.
  logy = np.log(y.astype(np.float64))
  yb = np_softmax(logy - logy.mean(0))
  margin = logits[:, 0] - logits[:, 1]
  hard1 = (margin < np.quantile(margin, 0.5)).astype(np.float64)
  target = (1 - alpha) * yb + alpha * np.stack([1 - hard1, hard1], -1)
  got = losses.get("logconf_balanced")(logits, y, 1.0, alpha_max=alpha, warmup_frac=0.2)
  np.testing.assert_allclose(got, np_ce(logits, target).mean(), rtol=1e-5)
  assert hard1.sum() == 8  # balanced, whatever the weak labels' prior
  # the plain logconf hardens at the weak labels' prior instead: a different target
  assert not np.isclose(float(losses.get("logconf")(logits, y, 1.0, alpha_max=alpha,
                                                     warmup_frac=0.2)), float(got))
