"""Training metrics of every stage: the console, metrics.jsonl, TensorBoard and W&B."""
import json
import logging
import math
import os
import time

from etils import epath

from w2s_jax.files import json_safe

log = logging.getLogger("w2s_jax")


class MetricWriter:
  """Training metrics of every stage: a progress line on the console and one JSON line per log
  step or evaluation in metrics.jsonl (time, stage key and label); with `tensorboard`, event
  files under WORKDIR/tensorboard/<stage label>-<key> (one run per stage; tensorboardX); with
  WANDB_PROJECT set and wandb installed, one W&B run per stage. Process 0 only."""

  def __init__(self, workdir: str, tensorboard: bool = False):
    self.root = epath.Path(workdir)
    self.path = self.root / "metrics.jsonl"
    self.tensorboard, self.stage_key = tensorboard, ""
    self._sinks = {}

  def for_stage(self, key: str) -> "MetricWriter":
    """The writer of one stage: its lines carry the stage key."""
    w = MetricWriter.__new__(MetricWriter)
    w.__dict__.update(self.__dict__, stage_key=key)
    return w

  def _line(self, label: str, kind: str, m: dict) -> None:
    with self.path.open("a") as f:
      f.write(json.dumps({"time": time.time(), "stage": label, "stage_key": self.stage_key,
                          "kind": kind, **json_safe(m)}) + "\n")
    for sink in self._external(label):
      sink(kind, m)

  def _external(self, label: str) -> list:
    """TensorBoard and W&B writers of this stage, opened on first use."""
    key = (label, self.stage_key)
    if key not in self._sinks:
      sinks = []
      run = f"{label.replace(':', '_')}-{self.stage_key}".strip("-")
      if self.tensorboard:
        from tensorboardX import SummaryWriter  # noqa: PLC0415  (optional: the tensorboard extra)
        tb = SummaryWriter(str(self.root / "tensorboard" / run))

        def to_tb(kind, m, tb=tb):
          for k, v in m.items():
            if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
              tb.add_scalar(f"{kind}/{k}", v, int(m["step"]))
          tb.flush()
        sinks.append(to_tb)
      if os.environ.get("WANDB_PROJECT"):
        import wandb  # noqa: PLC0415  (optional)
        wb = wandb.init(project=os.environ["WANDB_PROJECT"], name=run, reinit="create_new",
                        config={"stage": label, "stage_key": self.stage_key})
        sinks.append(lambda kind, m, wb=wb: wb.log(
            {f"{kind}/{k}": v for k, v in m.items() if k != "step"}, step=int(m["step"])))
      self._sinks[key] = sinks
    return self._sinks[key]

  def write(self, stage: str, m: dict, total_steps: int):
    step = m["step"]
    log.info("[%s] step %d/%d (%3.0f%%) loss %.4f acc %.3f lr %.2e %.0f ex/s", stage, step + 1,
             total_steps, 100 * (step + 1) / total_steps, m["loss"], m["accuracy"],
             m["lr"], m["examples_per_s"])
    self._line(stage, "train", m)

  def write_eval(self, stage: str, step: int, m: dict):
    self._line(stage, "eval", {"step": step, **m})
