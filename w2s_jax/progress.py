"""Progress lines for phases that take more than a few seconds: count, rate and ETA, at most one
line every `every` seconds (process 0 logs; the others are quiet)."""
import logging
import time

log = logging.getLogger("w2s_jax")


class Progress:
  """`total` 0: unknown (a file read to its end): count and rate, no ETA."""

  def __init__(self, what: str, total: int, unit: str = "rows", every: float = 10.0):
    self.what, self.total, self.unit, self.every = what, total, unit, every
    self.done, self.t0 = 0, time.time()
    self.t_last = self.t0

  def update(self, n: int = 1) -> None:
    self.done += n
    now = time.time()
    if now - self.t_last >= self.every and (self.done < self.total or not self.total):
      self.t_last = now
      rate = self.done / max(now - self.t0, 1e-9)
      if not self.total:
        log.info("[%s] %d %s, %.1f %s/s", self.what, self.done, self.unit, rate, self.unit)
        return
      log.info("[%s] %d/%d %s (%.0f%%), %.1f %s/s, ETA %.0fs", self.what, self.done, self.total,
               self.unit, 100 * self.done / max(self.total, 1), rate, self.unit,
               (self.total - self.done) / max(rate, 1e-9))
