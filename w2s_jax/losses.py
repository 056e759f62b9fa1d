"""Weak-to-strong losses: a registry of pure functions of (logits, soft targets).

Each loss is split in two so that batch statistics stay defined over the WHOLE optimizer batch,
also under gradient accumulation:
  targets(logits, y, step_frac, **hp) -> (target [B, C], weight [B])  no gradient; may use batch
                                                                        statistics of logits and y
  per_example(logits, target, **hp)  -> loss [B]                        differentiated
  loss = sum(weight * per_example) / sum(weight)
`logits` are the student's own, stop-gradient, in fp32 (ranking by logits rather than by
probabilities keeps full resolution when predictions saturate). With one micro-batch both run in
one pass; with several, the train step first predicts the whole batch, then accumulates.
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class Loss(NamedTuple):
  name: str
  needs_logits: bool  # targets depend on the student's predictions
  targets: Callable
  per_example: Callable

  def __call__(self, logits, y, step_frac=1.0, **hp):
    """Scalar loss of `logits` [B, C] against soft targets `y` [B, C] (pure, jittable)."""
    target, weight = self.targets(jax.lax.stop_gradient(logits.astype(jnp.float32)), y,
                                  step_frac, **hp)
    ell = self.per_example(logits, jax.lax.stop_gradient(target), **hp)
    return weighted_mean(ell, jax.lax.stop_gradient(weight))


def weighted_mean(values, weight):
  return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), 1e-12)


def cross_entropy(logits, target, **_):
  return -jnp.sum(target * jax.nn.log_softmax(logits.astype(jnp.float32), -1), -1)


def _plain(logits, y, step_frac, **_):
  return y, jnp.ones(y.shape[:1], jnp.float32)


def _kl(logits, target, **_):
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
  return jnp.sum(jnp.where(target > 0, target * (jnp.log(jnp.where(target > 0, target, 1.0))
                                                   - logp), 0.0), -1)


def warmup_alpha(step_frac, alpha_max, warmup_frac):
  """Linear warmup of the confidence weight: alpha_max * min(1, step_frac / warmup_frac)."""
  if warmup_frac <= 0:
    return jnp.asarray(alpha_max, jnp.float32)
  return alpha_max * jnp.minimum(1.0, jnp.asarray(step_frac, jnp.float32) / warmup_frac)


def harden(logits, prior):
  """Hard labels whose class shares match `prior` (the weak labels' class balance).

  Binary: class 1 for the examples whose p[:, 0] is below the `prior[1]`-quantile of p[:, 0] over
  the batch (the reference rule), computed on the margin z0 - z1, which orders examples exactly
  as p[:, 0] does without float32's loss of resolution near p = 1. C > 2: argmax of log p - b,
  with per-class offsets b moved for a fixed number of steps until the argmax shares match the
  prior (a multiplicative fit).
  """
  c = logits.shape[-1]
  if c == 2:
    margin = logits[:, 0] - logits[:, 1]
    one = (margin < jnp.quantile(margin, prior[1])).astype(jnp.float32)
    return jnp.stack([1.0 - one, one], -1)
  logp = jax.nn.log_softmax(logits, -1)

  def fit(b, _):
    share = jax.nn.one_hot(jnp.argmax(logp - b, -1), c).mean(0)
    return b + jnp.log(share + 1e-6) - jnp.log(prior + 1e-6), None

  b, _ = jax.lax.scan(fit, jnp.zeros((c,), jnp.float32), None, length=20)
  return jax.nn.one_hot(jnp.argmax(logp - b, -1), c)


def _logconf(logits, y, step_frac, alpha_max=0.75, warmup_frac=0.2, **_):
  a = warmup_alpha(step_frac, alpha_max, warmup_frac)
  hard = harden(logits, y.mean(0))
  return (1.0 - a) * y + a * hard, jnp.ones(y.shape[:1], jnp.float32)


def _logconf_balanced(logits, y, step_frac, alpha_max=0.75, warmup_frac=0.2, **_):
  """logconf with batch balancing (EleutherAI/w2s `balance_batch`): the weak labels' log-odds
  are centred over the batch (each class's log-probability minus its batch mean: the mean
  log-odds becomes 0, not the mean probability 1/C), and the hardened labels split 1/C each."""
  a = warmup_alpha(step_frac, alpha_max, warmup_frac)
  logy = jnp.log(jnp.clip(y, 1e-7))
  y = jax.nn.softmax(logy - logy.mean(0, keepdims=True), -1)
  hard = harden(logits, jnp.full(y.shape[-1:], 1.0 / y.shape[-1]))
  return (1.0 - a) * y + a * hard, jnp.ones(y.shape[:1], jnp.float32)


def _reverse_xent(logits, target, floor=1e-4, **_):
  """Reverse cross-entropy -sum_c p(c) log y(c), with the student's own distribution p (and
  its gradient) in place of the target (Xu et al. 2025); the weak labels are floored at
  `floor`, since a hard label's log 0 would make any mass on it infinitely costly."""
  p = jax.nn.softmax(logits.astype(jnp.float32), -1)
  return -jnp.sum(p * jnp.log(jnp.clip(target, floor)), -1)


def _reverse_kl(logits, target, floor=1e-4, **_):
  """Reverse KL(p || y) = sum_c p(c) (log p(c) - log y(c)) (Yao et al. 2025): the reverse
  cross-entropy minus the student's entropy, so a student can fit only one mode of the weak
  labels."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
  return jnp.sum(jnp.exp(logp) * (logp - jnp.log(jnp.clip(target, floor))), -1)


def _product(logits, y, step_frac, alpha=1.0, beta=1.0, **_):
  log_t = alpha * jnp.log(jnp.clip(y, 1e-12)) + beta * jax.nn.log_softmax(logits, -1)
  return jax.nn.softmax(log_t, -1), jnp.ones(y.shape[:1], jnp.float32)


def _window(logits, y, step_frac, radius=-1.0, **_):
  """Train only where the student is unsure: max p < 1/C + r (binary: 0.5 + r)."""
  base = 1.0 / y.shape[-1]
  r = jnp.median(y.max(-1) - base) if radius < 0 else jnp.asarray(radius, jnp.float32)
  return y, (jax.nn.softmax(logits, -1).max(-1) < base + r).astype(jnp.float32)


def _entropy(logits, target, entropy_weight=0.1, **_):
  """CE to the weak labels plus entropy of the student's OWN distribution, with its gradient."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
  entropy = -jnp.sum(jnp.exp(logp) * logp, -1)
  return cross_entropy(logits, target) + entropy_weight * entropy


LOSSES = {
    "xent": Loss("xent", False, _plain, cross_entropy),
    "kl": Loss("kl", False, _plain, _kl),
    "logconf": Loss("logconf", True, _logconf, cross_entropy),
    "product": Loss("product", True, _product, cross_entropy),
    "window": Loss("window", True, _window, cross_entropy),
    "entropy": Loss("entropy", False, _plain, _entropy),
    "logconf_balanced": Loss("logconf_balanced", True, _logconf_balanced, cross_entropy),
    "reverse_xent": Loss("reverse_xent", False, _plain, _reverse_xent),
    "reverse_kl": Loss("reverse_kl", False, _plain, _reverse_kl),
}


def get(name: str) -> Loss:
  if name not in LOSSES:
    raise KeyError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")
  return LOSSES[name]
