"""Training and prediction for one model on one mesh: pure functions compiled with jax.jit.

The NNX model is split ONCE into a graph definition and a pure parameter dict; the train step is
`train_step(state, batch) -> (state, metrics)` over plain pytrees, compiled with in/out shardings
and the state donated. Parameters are created directly in their shards (never whole on a device).
"""
import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from w2s_jax import lora as lora_lib, losses, sharding
from w2s_jax.data import dataset as data_lib
from w2s_jax.errors import NonFiniteLoss  # noqa: F401  (re-exported: train.NonFiniteLoss)
from w2s_jax.progress import Progress
from w2s_jax.models import ModelConfig, Transformer, param_count

log = logging.getLogger(__name__)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
ILLEGAL = -1e9  # the logit of a class outside a row's legal set: finite, so an empty set is no NaN


def legal_classes(bits, classes: int):
  """[..., ceil(C/8)] uint8 bit sets (little-endian, np.packbits) -> [..., C] bool."""
  return jnp.unpackbits(bits, axis=-1, count=classes, bitorder="little").astype(bool)


def restrict(logits, legal):
  """A softmax over the legal classes only: the others get no probability and no gradient."""
  return logits if legal is None else jnp.where(legal, logits, jnp.asarray(ILLEGAL, logits.dtype))


def restrict_targets(y, legal):
  """Targets renormalized over the legal classes; a row with no legal mass becomes all zero (no
  cross-entropy: an illegal label says nothing about which legal move is best)."""
  if legal is None:
    return y
  y = jnp.where(legal, y, 0.0)
  return y / jnp.maximum(y.sum(-1, keepdims=True), 1e-12)


def with_overrides(tcfg, **override):
  """A copy of the train config with some values changed (pretraining, generative stages)."""
  t = tcfg.copy_and_resolve_references()
  with t.unlocked():
    t.update(override)
  return t


def learning_rate(tcfg, model_cfg: ModelConfig, override: float = 0.0) -> float:
  """The reference rule: `lr` up to `large_model_params` parameters, `lr_large` above."""
  if override > 0:
    return override
  return tcfg.lr if param_count(model_cfg) <= tcfg.large_model_params else tcfg.lr_large


def make_optimizer(tcfg, lr: float, total_steps: int):
  """optax optimizer and schedule from the config (defaults: Adam, cosine to 0, no warmup): the
  schedule baked in, for programs of one rate and length (probes, the dry run, benchmarks)."""
  values = schedule_values(tcfg, lr, total_steps)
  schedule = lambda count: learning_rate_at(tcfg.schedule, jnp.asarray(count), values)  # noqa: E731
  return optax.chain(unit_optimizer(tcfg), optax.scale_by_learning_rate(schedule)), schedule


def unit_optimizer(tcfg):
  """make_optimizer's transformation without its learning rate: the train program scales the
  update by -lr(step) itself, so the rate and the schedule's length are run-time values."""
  parts = [optax.clip_by_global_norm(tcfg.grad_clip)] if tcfg.grad_clip > 0 else []
  parts.append(optax.scale_by_adam(b1=tcfg.b1, b2=tcfg.b2, eps=tcfg.eps))
  if not (tcfg.optimizer == "adam" and tcfg.weight_decay == 0):
    parts.append(optax.add_decayed_weights(tcfg.weight_decay))  # optax.adamw's order
  return optax.chain(*parts)


def schedule_values(tcfg, lr: float, total_steps: int) -> dict:
  """What a shared train program reads at run time: the peak learning rate, the warmup and
  decay lengths of make_optimizer's schedule, and the stage's length (fp32 scalars)."""
  warmup = min(tcfg.warmup_steps, total_steps)
  return {k: np.float32(v) for k, v in (("lr", lr), ("warmup", warmup),
                                         ("decay", max(total_steps - warmup, 1)),
                                         ("total", total_steps))}


def learning_rate_at(kind: str, step, values: dict):
  """make_optimizer's schedule (linear warmup from 0, then `kind`: cosine to 0, linear to 0 or
  constant) at `step`, from traced schedule_values; optax's formulas, term for term."""
  s = step.astype(jnp.float32)
  lr, warmup, decay = values["lr"], values["warmup"], values["decay"]
  c = jnp.minimum(jnp.maximum(s - warmup, 0.0), decay)
  main = {"cosine": lr * (0.5 * (1 + jnp.cos(jnp.pi * c / decay))),
          "linear": lr * (1 - c / decay), "constant": lr}[kind]
  warm = -lr * (1 - jnp.minimum(s, warmup) / jnp.maximum(warmup, 1.0)) + lr
  return jnp.where(s < warmup, warm, main)


class Trainer:
  """Compiled programs of one model (architecture, classes, dtype) on one mesh."""

  def __init__(self, model_cfg: ModelConfig, num_classes: int, mesh, rules, *,
               dtype: str = "float32", remat: str = "none", attention: str = "xla", lora=None,
               pairwise: bool = False, cpu_tuned: bool = True, move_geometry=None):
    """`lora`: None (full fine-tuning) or (rank, alpha, target weight names). `pairwise`: a
    reward model: rows are pairs of texts, the head gives one scalar per text, and the two
    "classes" are the Bradley-Terry preference (class 1: the first text preferred).
    `cpu_tuned`: on a CPU mesh, attention "xla" runs as "masked", the projections as 2-D
    matmuls and the layers unrolled (False: as on other platforms; for comparisons).
    `move_geometry`: a square move head's (Transformer)."""
    self.model_cfg, self.num_classes, self.mesh, self.rules = model_cfg, num_classes, mesh, rules
    self.lora, self.pairwise = lora, pairwise
    # num_classes=0: the next-token head; its "classes" are the vocabulary (one-token answers).
    self.classes = num_classes or model_cfg.vocab_size
    heads = 1 if pairwise else num_classes
    # XLA CPU: our attention (its own backward), 2-D projections and unrolled layers, faster
    # train steps there (BUILD_NOTES.md, "Speed bookkeeping"); other platforms keep jax's
    # kernel and the scan.
    cpu = cpu_tuned and mesh.devices.flat[0].platform == "cpu"
    kernel = "masked" if cpu and attention == "xla" else attention
    make = lambda seed: Transformer(model_cfg, heads, dtype=DTYPES[dtype], remat=remat,  # noqa: E731
                                    attention=kernel, scan_layers=not cpu, rows=cpu,
                                    move_geometry=move_geometry, rngs=nnx.Rngs(seed))
    self._make = make
    self.graphdef, self.abstract_state = nnx.split(nnx.eval_shape(lambda: make(0)))
    shapes = self.abstract_params()
    self.param_specs = sharding.tree_specs(sharding.logical_axes(self.abstract_state), shapes,
                                           rules, mesh)
    self.param_shardings = sharding.named(mesh, self.param_specs)
    self.batch_axes = sharding.batch_spec(rules, mesh, 1)[0]
    self.replicated = NamedSharding(mesh, P())
    self.traces = {"train": 0, "predict": 0}  # Python side effect: counts compilations
    self.programs = {}  # train programs by what they bake in (see `fit`)
    self._predict = {what: jax.jit(
        lambda p, t, n, what=what: self._predict_fn(p, t, n, what), in_shardings=(
            self.param_shardings, self._batch_sharding(1), self._batch_sharding(0)),
        out_shardings=self._batch_sharding(1)) for what in ("probs", "logits", "features",
                                                               "layers")}
    self._generate = {}  # answer length -> jitted greedy decoder

  def predict_program(self, what: str):
    """(jitted forward, its input shardings (params, tokens, lengths)) of `predict(what=...)`."""
    return self._predict[what], (self.param_shardings, self._batch_sharding(1),
                                 self._batch_sharding(0))

  def _batch_sharding(self, extra_dims: int, lead: int = 0):
    return NamedSharding(self.mesh, P(*([None] * lead), self.batch_axes, *([None] * extra_dims)))

  def merge(self, params) -> Transformer:
    state = jax.tree.map(lambda x: x, self.abstract_state)  # fresh copy of the structure
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(self.graphdef, state)

  def abstract_params(self) -> dict:
    """Shapes and dtypes of the parameters (a pure dict of ShapeDtypeStruct), no allocation."""
    return nnx.to_pure_dict(self.abstract_state)

  def init_params(self, seed: int) -> dict:
    """Fresh parameters for `seed`, created directly in their shards."""
    return jax.jit(lambda: nnx.to_pure_dict(nnx.split(self._make(seed))[1]),
                   out_shardings=self.param_shardings)()

  def put_params(self, params) -> dict:
    return jax.device_put(params, self.param_shardings)

  def act_sharding(self):
    return self._batch_sharding(2)

  def logits(self, params, tokens, lengths):
    model = self.merge(params)
    if self.pairwise:  # tokens [B, L, 2], lengths [B, 2]: both texts of a pair in one batch
      b = tokens.shape[0]
      reward = model(jnp.concatenate([tokens[..., 0], tokens[..., 1]]),
                     jnp.concatenate([lengths[:, 0], lengths[:, 1]]), self.act_sharding())[:, 0]
      # softmax([r_B, r_A])[1] = sigmoid(r_A - r_B): Bradley-Terry P(first preferred).
      return jnp.stack([reward[b:], reward[:b]], -1)
    return model(tokens, lengths, self.act_sharding())

  # ------------------------------------------------------------------------------ predict
  def _predict_fn(self, params, tokens, lengths, what):
    self.traces["predict"] += 1
    if what == "features":
      return self.merge(params).features(tokens, lengths, self.act_sharding())
    if what == "layers":  # [B, L * d]: rows stay 2-D on their way to the host
      h = self.merge(params).features_by_layer(tokens, lengths, self.act_sharding())
      return h.reshape(h.shape[0], -1)
    logits = self.logits(params, tokens, lengths)
    return logits if what == "logits" else jax.nn.softmax(logits, -1)

  def predict(self, params, ds: data_lib.Dataset, batch_size: int, buckets,
              what: str = "probs") -> np.ndarray:
    """For every row of `ds`, in order, on every process: class probabilities [N, C] (with
    what="logits" their logits, float32: margins survive where probabilities saturate); with
    what="features" the last real token's hidden state [N, d] (what a linear probe reads); with
    what="layers" that state after every layer, final-normed [N, L, d]."""
    d, n_layers = self.model_cfg.d_model, self.model_cfg.n_layers
    width = {"features": d, "layers": n_layers * d}.get(what, self.classes)
    out = self._over_batches(self._predict[what], params, ds, batch_size, buckets, width,
                             np.float32)
    return out.reshape(len(out), n_layers, d) if what == "layers" else out

  def _over_batches(self, fn, params, ds, batch_size, buckets, width, dtype) -> np.ndarray:
    """fn(params, tokens, lengths) over `ds` in length-sorted eval batches; rows in order."""
    out = np.zeros((len(ds), width), dtype)
    tokens_sharding, lengths_sharding = self._batch_sharding(1), self._batch_sharding(0)
    rows = sharding.local_rows(lengths_sharding, (batch_size,), 0)
    progress = Progress(f"{self.model_cfg.n_layers}-layer model, {len(ds)} rows", len(ds))
    for idx, batch in data_lib.eval_batches(ds, batch_size, buckets):
      progress.update(len(idx))
      tokens = jax.make_array_from_process_local_data(
          tokens_sharding, batch["tokens"][rows], batch["tokens"].shape)
      lengths = jax.make_array_from_process_local_data(
          lengths_sharding, batch["lengths"][rows], batch["lengths"].shape)
      out[idx] = sharding.host_array(fn(params, tokens, lengths))[:len(idx)]
    return out

  def _generate_fn(self, params, tokens, lengths, steps):
    self.traces["predict"] += 1
    logits, cache = self.merge(params).prefill(tokens, lengths, tokens.shape[1] + steps)

    def body(carry, _):  # NNX modules must not cross a trace: merge inside the loop body
      logits, cache, position = carry
      token = jnp.argmax(logits, -1).astype(jnp.int32)
      logits, cache = self.merge(params).decode_step(token, position, cache)
      return (logits, cache, position + 1), token

    _, out = jax.lax.scan(body, (logits, cache, lengths), None, length=steps)
    return out.T

  def generate(self, params, ds: data_lib.Dataset, steps: int, batch_size: int,
               buckets) -> np.ndarray:
    """Greedy continuations [N, steps] of every (right-padded) prompt of `ds`, in order: one
    jitted program per prompt bucket (fixed shapes), with a KV cache; no early stop (the caller
    cuts at its stop token)."""
    if steps not in self._generate:
      self._generate[steps] = jax.jit(
          lambda p, t, n: self._generate_fn(p, t, n, steps), in_shardings=(
              self.param_shardings, self._batch_sharding(1), self._batch_sharding(0)),
          out_shardings=self._batch_sharding(1))
    return self._over_batches(self._generate[steps], params, ds, batch_size, buckets, steps,
                              np.int32)

  # ------------------------------------------------------------------------------- train
  def trainable(self, params: dict, seed: int = 0) -> dict:
    """What the optimizer updates: all parameters, or (LoRA) the adapters and the head."""
    if not self.lora:
      return params
    rank, _, targets = self.lora
    return {"lora": lora_lib.init(params["blocks"], rank, targets, jax.random.key(seed)),
            **self._head(params)}

  def _head(self, params: dict) -> dict:
    """The classification head (trained with LoRA); a next-token head stays frozen."""
    return {"cls_head": params["cls_head"]} if self.num_classes else {}

  def effective(self, trainable: dict, frozen) -> dict:
    """The full parameters the model runs with (LoRA: adapters merged into the frozen base)."""
    if not self.lora:
      return trainable
    rank, alpha, _ = self.lora
    return dict(lora_lib.merge(frozen, trainable["lora"], rank, alpha), **self._head(trainable))

  def answer_loss(self, params, tokens, lengths, answers):
    """Next-token cross-entropy summed over the answer tokens only, and how many the model
    predicts right. answers [B, A]: the ids that end each row (-1 where a row's answer is
    shorter); the logits are computed at the answer positions only (V may be 150k)."""
    model = self.merge(params)
    h = model.hidden(tokens, self.act_sharding())
    mask = answers >= 0
    start = lengths - mask.sum(-1) - 1  # the position that predicts the first answer token
    pos = jnp.clip(start[:, None] + jnp.arange(answers.shape[1])[None], 0, tokens.shape[1] - 1)
    logits = model.lm_logits(h[jnp.arange(h.shape[0])[:, None], pos])  # [B, A, V]
    target = jnp.maximum(answers, 0)
    ce = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), target[..., None], -1)[..., 0]
    return jnp.sum(ce * mask), jnp.sum((jnp.argmax(logits, -1) == target) * mask)

  def _apply(self, tx, schedule, state, grads, value, accuracy, values=None):
    params = state["params"]
    updates, opt_state = tx.update(grads, state["opt_state"], params)
    if values is None:  # the schedule is inside tx
      lr = schedule(state["step"])
    else:  # tx is unit_optimizer's: scale as optax's scale_by_learning_rate does
      lr = learning_rate_at(schedule, state["step"], values)
      updates = jax.tree.map(lambda u: (-lr).astype(u.dtype) * u, updates)
    new_state = {"step": state["step"] + 1, "params": optax.apply_updates(params, updates),
                 "opt_state": opt_state, "frozen": state["frozen"]}
    return new_state, {"loss": value, "lr": lr,
                       "grad_norm": optax.tree.norm(grads), "accuracy": accuracy}

  def make_train_step(self, tx, schedule, loss: losses.Loss, loss_hp: dict, total_steps: int,
                      seed: int = 0, targets: str = "soft", legal: bool = False):
    """The pure train step and its shardings for one optimizer, loss and schedule.
    The state is {step, params (what trains), opt_state, frozen (LoRA's base, else None)}.
    `targets`: "soft" [accum, micro, C] probabilities; "hard" [accum, micro] class ids;
    "answer" [accum, micro, A] answer token ids (-1 padded), next-token cross-entropy (xent).
    `legal`: the batch also holds "legal" [accum, micro, ceil(C/8)] bit sets (np.packbits,
    little-endian) of each row's legal classes; the loss is a softmax over those only.
    `total_steps=None`: a program shared by stages of any learning rate and length: `tx` is
    unit_optimizer's, `schedule` the schedule's kind (tcfg.schedule), and the step takes a third
    argument, schedule_values(...), that says the rate and the lengths."""
    if targets == "answer" and legal:
      raise ValueError("legal-class losses take class targets, not generated answers")
    if targets == "answer" and loss.name != "xent":
      raise ValueError(f"loss {loss.name!r}: generative answers train with xent only")

    def train_step(state, batch, values=None):
      self.traces["train"] += 1
      params, step, frozen = state["params"], state["step"], state["frozen"]
      step_frac = step.astype(jnp.float32) / (values["total"] if values else total_steps)
      apply = functools.partial(self._apply, tx, schedule, values=values)
      tokens, lengths, y = batch["tokens"], batch["lengths"], batch["targets"]
      if targets == "hard":  # class ids [accum, micro]: one-hot here, not on the host (C ~ 50k)
        y = jax.nn.one_hot(y, self.classes, dtype=jnp.float32)
      # Legal sets travel as bits (a 100k-row chess corpus: 25 MB, not 200 MB of masks).
      mask = legal_classes(batch["legal"], self.classes) if legal else None
      y = restrict_targets(y, mask)
      if targets == "answer":
        n_answer = jnp.maximum(jnp.sum(y >= 0), 1)

        def micro_step(acc, mb):
          def loss_fn(p):
            ce, right = self.answer_loss(self.effective(p, frozen), *mb)
            return ce / n_answer, right / n_answer
          (v, right), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
          return jax.tree.map(jnp.add, acc, (g, v, right)), None

        zeros = (jax.tree.map(jnp.zeros_like, params), jnp.zeros(()), jnp.zeros(()))
        (grads, value, accuracy), _ = jax.lax.scan(micro_step, zeros, (tokens, lengths, y))
        return apply(state, grads, value, accuracy)
      accum, micro, c = y.shape
      if accum == 1:
        def loss_fn(p):
          logits = restrict(self.logits(self.effective(p, frozen), tokens[0], lengths[0]),
                            None if mask is None else mask[0])
          return loss(logits, y[0], step_frac, **loss_hp), logits[None]
        (value, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
      else:
        # Batch statistics (threshold, window radius) over the WHOLE optimizer batch: predict
        # every micro-batch first, then accumulate gradients against fixed targets.
        full = self.effective(params, frozen)
        # mask None is an empty pytree: lax.map and scan carry it through as None.
        logits = jax.lax.map(lambda mb: restrict(self.logits(full, *mb[:2]), mb[2]).astype(
            jnp.float32), (tokens, lengths, mask)) if loss.needs_logits else jnp.zeros(y.shape)
        target, weight = loss.targets(logits.reshape(-1, c), y.reshape(-1, c), step_frac,
                                      **loss_hp)
        target, weight = target.reshape(y.shape), weight.reshape(accum, micro)
        total_weight = jnp.maximum(weight.sum(), 1e-12)

        def micro_step(acc, mb):
          tok, ln, tg, w, m = mb
          def loss_fn(p):
            logits = restrict(self.logits(self.effective(p, frozen), tok, ln), m)
            return jnp.sum(w * loss.per_example(logits, tg, **loss_hp)) / total_weight, logits
          (v, logits), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
          return jax.tree.map(jnp.add, acc, (g, v)), logits

        zeros = (jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.float32))
        (grads, value), logits = jax.lax.scan(micro_step, zeros,
                                              (tokens, lengths, target, weight, mask))
      return apply(state, grads, value, jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(y, -1)))

    trainable = jax.eval_shape(lambda p: self.trainable(p, seed), self.abstract_params())
    # Adapters are small: replicated. Everything else keeps its parameter's sharding.
    specs = self.param_specs if not self.lora else {
        "lora": jax.tree.map(lambda _: P(), trainable["lora"]), **self._head(self.param_specs)}
    opt_specs = optax.tree_map_params(
        tx, lambda _, spec: spec, jax.eval_shape(tx.init, trainable), specs,
        transform_non_params=lambda _: P(), is_leaf=lambda x: isinstance(x, P))
    state_shardings = {"step": self.replicated, "params": sharding.named(self.mesh, specs),
                       "opt_state": sharding.named(self.mesh, opt_specs),
                       "frozen": self.param_shardings if self.lora else None}
    batch_shardings = {"tokens": self._batch_sharding(1, lead=1),
                       "lengths": self._batch_sharding(0, lead=1),
                       "targets": self._batch_sharding(0 if targets == "hard" else 1, lead=1)}
    if legal:
      batch_shardings["legal"] = self._batch_sharding(1, lead=1)
    if total_steps is None:
      values = {k: self.replicated for k in ("lr", "warmup", "decay", "total")}
      step_fn = jax.jit(train_step, in_shardings=(state_shardings, batch_shardings, values),
                        out_shardings=(state_shardings, self.replicated), donate_argnums=(0,))
    else:
      step_fn = jax.jit(train_step, in_shardings=(state_shardings, batch_shardings),
                        out_shardings=(state_shardings, self.replicated), donate_argnums=(0,))
    def init_state(params):
      train_params = self.trainable(params, seed)
      return {"step": jnp.zeros((), jnp.int32), "params": train_params,
              "opt_state": tx.init(train_params), "frozen": params if self.lora else None}

    init_fn = jax.jit(init_state, out_shardings=state_shardings, donate_argnums=(0,))
    return step_fn, init_fn, batch_shardings
