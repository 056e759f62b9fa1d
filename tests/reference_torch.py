"""A small PyTorch re-implementation of the reference weak-to-strong training loop.

The reference is openai/weak-to-strong (PyTorch, transformers): `weak_to_strong/model.py`
(TransformerWithHead), `weak_to_strong/loss.py` (xent_loss, logconf_loss_fn) and
`weak_to_strong/train.py` (train_model). This file keeps its semantics, with the corrections that
/work/shared/W2S_FACTS.md asks for (and w2s_jax implements):
  - the last real token is found from explicit lengths, not `input_ids != 0`;
  - the confidence weight warms up LINEARLY (the reference ramps to 0.1 * a_max, then jumps);
  - the batch order is w2s_jax's `batch_indices(n, step, batch_size, seed)` (a fresh permutation
    per epoch) instead of the reference's one shuffled pass repeated, so both loops see the same
    rows at every step.
It deliberately uses nothing from w2s_jax except that batch-order function: the model is a plain
transformers model loaded from a folder, the optimizer and schedule are torch's.
"""
import math

import numpy as np
import torch
import transformers

from w2s_jax.data.dataset import batch_indices


class TransformerWithHead(torch.nn.Module):
  """model.py TransformerWithHead: `self.lm = AutoModelForCausalLM.from_pretrained(name)`,
  `self.transformer = self.lm.base_model`, `self.score = Linear(hidden, num_labels, bias=False)`
  initialised with `normal_(std=0.0)` (i.e. zeros); logits = score(last hidden state at the last
  real token). `transformer(...)[0]` is the final hidden state AFTER the final norm (GPT-2's
  ln_f, Llama's norm), which is what w2s_jax's `Transformer.features` reads too.
  `dtype=torch.float64` is for diagnosis only (it measures the float32 rounding floor)."""

  def __init__(self, folder: str, num_labels: int = 2, dtype=torch.float32):
    super().__init__()
    self.lm = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    self.transformer = self.lm.base_model  # CausalLM -> PreTrainedModel (GPT2Model, LlamaModel)
    hidden = self.lm.config.hidden_size
    self.score = torch.nn.Linear(hidden, num_labels, bias=False, dtype=dtype)
    torch.nn.init.normal_(self.score.weight, std=0.0)  # model.py: a zero-initialised head

  def features(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    # model.py forward: `transformer_outputs = self.transformer(input_ids)` with no attention
    # mask: right padding behind a causal mask cannot reach a real position. Then the hidden
    # state at `input_lens - 1`, here from explicit lengths (the reference counts ids != 0).
    h = self.transformer(input_ids=input_ids).last_hidden_state
    return h[torch.arange(h.shape[0]), lengths - 1]

  def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return self.score(self.features(input_ids, lengths))  # model.py: logits = self.score(h)


# ------------------------------------------------------------------------------------ losses
def xent_loss(logits, labels, step_frac):
  """loss.py xent_loss: cross_entropy(logits, soft labels), mean over the batch."""
  return torch.nn.functional.cross_entropy(logits, labels).mean()


def logconf_loss(logits, labels, step_frac, alpha_max=0.75, warmup_frac=0.2):
  """loss.py logconf_loss_fn, with a linear warmup of the confidence weight.

  Reference: `coef = 1.0 if step_frac > warmup_frac else step_frac; coef *= aux_coef` (a ramp to
  step_frac * aux_coef, then a jump); corrected: coef = aux_coef * min(1, step_frac/warmup_frac).
  The rest is the reference line by line: threshold = quantile(p[:, 0], mean(labels, 0)[1]) over
  the WHOLE optimizer batch (train.py stacks every minibatch's logits before the loss), hard
  label 0 where p0 >= threshold and 1 where p0 < threshold, target = (1-coef) y + coef hard.
  (w2s_jax ranks the margin z0 - z1 instead of p0: a monotone map of p0, and a linearly
  interpolated quantile falls between the same two order statistics, so the hard labels are the
  same; checked: no difference on 200 random batches nor on any step of the test's student.)"""
  logits = logits.float() if logits.dtype != torch.float64 else logits  # float64: diagnosis
  labels = labels.to(logits.dtype)
  coef = alpha_max * min(1.0, step_frac / warmup_frac)
  preds = torch.softmax(logits, dim=-1)
  mean_weak = torch.mean(labels, dim=0)
  assert mean_weak.shape == (2,)
  threshold = torch.quantile(preds[:, 0], mean_weak[1])  # linear interpolation (torch default)
  strong_preds = torch.cat(
      [(preds[:, 0] >= threshold)[:, None], (preds[:, 0] < threshold)[:, None]], dim=1)
  target = labels * (1 - coef) + strong_preds.detach() * coef
  return torch.nn.functional.cross_entropy(logits, target, reduction="none").mean()


LOSSES = {"xent": xent_loss, "logconf": logconf_loss}


# ---------------------------------------------------------------------------------- training
def cosine_lambda(nsteps: int):
  """train.py: `CosineAnnealingLR(optimizer, nsteps)`, whose closed form is
  lr_t = lr * (1 + cos(pi * t / nsteps)) / 2 for the t-th optimizer.step() (t = 0, 1, ...):
  written in closed form (LambdaLR) rather than torch's recursive update, which drifts by
  float rounding. Same as optax.cosine_decay_schedule(lr, nsteps) at count t, and optax's adam
  applies schedule(count) with count = 0 to the first update, as LambdaLR does."""
  return lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, nsteps) / nsteps))


class AdamFp32BiasCorrection(torch.optim.Adam):
  """torch.optim.Adam with ONE change: the bias corrections 1 - beta**t are computed in the
  parameters' dtype (float32), as optax.adam does (`1 - decay**count`, count an int32 array),
  instead of in Python doubles.

  Why it exists: in float32, 0.999 rounds to 0.99900001287, so 1 - 0.999**t is off by -1.29e-5
  relative at t = 1 (and by up to ~2e-5 over the first 30 steps with pow's rounding): every
  early optax update is ~6.5e-6 (relative) larger than torch's. Harmless, but the logconf student
  feeds its own predictions back as targets and Adam turns gradient entries near eps (1e-8) into
  full-size steps, so that relative 1e-5 grows to ~6e-5 in the loss and ~5e-4 in the final
  probabilities within 24 steps (measured; see test_reference.py). With this class the torch
  loop does optax's arithmetic and the gap is fp32 accumulation order only.
  The update itself is torch's single-tensor Adam (torch/optim/adam.py, non-capturable path)."""

  @torch.no_grad()
  def step(self, closure=None):
    assert closure is None
    for group in self.param_groups:
      (beta1, beta2), lr, eps = group["betas"], group["lr"], group["eps"]
      assert group["weight_decay"] == 0 and not group["amsgrad"]
      for p in group["params"]:
        if p.grad is None:
          continue
        state = self.state[p]
        if not state:
          state["step"] = torch.tensor(0.0, dtype=torch.float32)
          state["exp_avg"] = torch.zeros_like(p)
          state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        grad, exp_avg, exp_avg_sq = p.grad, state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        t = state["step"].to(p.dtype)
        bias_correction1 = 1 - torch.tensor(beta1, dtype=p.dtype) ** t  # float32, as optax
        bias_correction2 = 1 - torch.tensor(beta2, dtype=p.dtype) ** t
        denom = (exp_avg_sq.sqrt() / bias_correction2.sqrt()).add_(eps)
        p.addcdiv_(exp_avg, denom, value=-lr / float(bias_correction1))


OPTIMIZERS = {"torch": torch.optim.Adam, "fp32-bias-correction": AdamFp32BiasCorrection}


def batch(tokens: np.ndarray, lengths: np.ndarray, idx: np.ndarray):
  """The rows `idx`, cut to their longest row (pad_sequence in train.py); explicit lengths."""
  n = lengths[idx]
  ids = torch.tensor(tokens[idx, :int(n.max())], dtype=torch.long)
  return ids, torch.tensor(n, dtype=torch.long)


def train_model(model: TransformerWithHead, tokens, lengths, soft_labels, *, nsteps: int,
                batch_size: int, lr: float, loss: str, seed: int, loss_hp=None,
                optimizer: str = "torch"):
  """train.py train_model: full fine-tuning of every weight (transformer and head) with
  `torch.optim.Adam(model.parameters(), lr=lr)` (betas 0.9/0.999, eps 1e-8, no weight decay),
  dropout off (`model.eval()`), a cosine schedule to 0 with no warmup, one loss over the whole
  optimizer batch, `step_frac = step / nsteps`. Returns the loss of every step, computed before
  that step's update (`loss_tot += loss.item()` ahead of `optimizer.step()`).
  `optimizer`: "torch" (the reference's torch.optim.Adam) or "fp32-bias-correction" (the same
  with optax's float32 bias corrections, AdamFp32BiasCorrection)."""
  loss_fn, loss_hp = LOSSES[loss], loss_hp or {}
  model.eval()  # train.py: "we purposefully turn off dropout, for determinism"
  opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                              weight_decay=0.0)
  scheduler = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lambda(nsteps))
  labels = torch.tensor(soft_labels, dtype=model.score.weight.dtype)
  losses = []
  for step in range(nsteps):
    idx = batch_indices(len(lengths), step, batch_size, seed)  # the same rows as w2s_jax
    ids, n = batch(tokens, lengths, idx)
    logits = model(ids, n)
    value = loss_fn(logits, labels[idx], step_frac=step / nsteps, **loss_hp)
    losses.append(value.item())
    value.backward()
    opt.step()
    opt.zero_grad()
    scheduler.step()
  return np.array(losses)


@torch.no_grad()
def predict(model: TransformerWithHead, tokens, lengths, batch_size: int = 64) -> np.ndarray:
  """eval.py: softmax of the head's logits, every row in order."""
  out = []
  for start in range(0, len(lengths), batch_size):
    ids, n = batch(tokens, lengths, np.arange(start, min(start + batch_size, len(lengths))))
    out.append(torch.softmax(model(ids, n), -1).numpy())
  return np.concatenate(out)


@torch.no_grad()
def features(model: TransformerWithHead, tokens, lengths) -> np.ndarray:
  ids, n = batch(tokens, lengths, np.arange(len(lengths)))
  return model.features(ids, n).numpy()
