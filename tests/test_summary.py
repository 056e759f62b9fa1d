"""Summaries across pairs: medians, intervals that exclude 0 beside chance, and the sign test,
against references on hand-made pooled rows."""
import math

import numpy as np
import pytest
from scipy import stats

from w2s_jax import report, summary


def row(task, weak, strong, loss, pgr, ci, valid=True):
  return {"task": task, "weak": weak, "strong": strong, "loss": loss, "pgr": pgr,
          "pgr_ci95": ci, "pgr_valid": valid}


ROWS = [row("a", "w1", "s1", "xent", 0.10, [-0.1, 0.3]),
        row("a", "w1", "s1", "logconf", 0.40, [0.2, 0.6]),
        row("a", "w1", "s2", "xent", 0.30, [0.1, 0.5]),
        row("a", "w1", "s2", "logconf", 0.20, [-0.2, 0.6]),
        row("a", "w2", "s2", "xent", -0.5, [-0.9, -0.1]),
        row("a", "w2", "s2", "logconf", 0.0, [-0.4, 0.4]),
        row("b", "w1", "s1", "xent", 5.0, [-9.0, 9.0], valid=False),  # ceiling <= weak
        row("b", "w1", "s1", "logconf", 0.7, [0.5, 0.9]),
        row("b", "w1", "s2", "xent", 0.2, [0.0, 0.4]),
        row("b", "w1", "s2", "logconf", 0.6, [0.1, 1.1])]


@pytest.mark.parametrize("wins,losses", [(0, 0), (3, 0), (7, 2), (5, 5), (1, 11), (20, 6)])
def test_sign_test_is_the_exact_binomial_test(wins, losses):
  want = 1.0 if wins + losses == 0 else stats.binomtest(wins, wins + losses, 0.5).pvalue
  assert math.isclose(summary.sign_test(wins, losses), want, rel_tol=1e-12)


def test_by_task_counts_valid_pairs_and_intervals_off_zero():
  got = {(s["task"], s["method"]): s for s in summary.by_task(ROWS, report.method_label)}
  a_xent = got[("a", "xent")]
  assert (a_xent["valid"], a_xent["above"], a_xent["below"]) == (3, 1, 1)
  assert a_xent["median"] == pytest.approx(np.median([0.1, 0.3, -0.5]))
  b_xent = got[("b", "xent")]  # the invalid pair is left out
  assert (b_xent["valid"], b_xent["above"], b_xent["median"]) == (1, 0, pytest.approx(0.2))
  assert got[("b", "logconf")]["above"] == 2 and got[("a", "logconf")]["by_chance"] == pytest.approx(0.075)


def test_comparisons_pair_by_task_weak_and_strong():
  (c,) = summary.comparisons(ROWS, report.method_label)
  # pairs valid for both: a/w1/s1 +0.3, a/w1/s2 -0.1, a/w2/s2 +0.5, b/w1/s2 +0.4
  assert (c["method"], c["against"], c["pairs"], c["wins"], c["losses"]) == (
      "logconf", "xent", 4, 3, 1)
  assert c["median_diff"] == pytest.approx(np.median([0.3, -0.1, 0.5, 0.4]))
  assert c["p"] == pytest.approx(stats.binomtest(3, 4, 0.5).pvalue)
  text = "\n".join(summary.lines(ROWS, report.method_label))
  assert "logconf - xent: higher PGR on 3 of 4 pairs, lower on 1" in text
  assert "a [xent]: 3 valid pairs, median PGR +0.10, 1 above 0 and 1 below (chance: 0.1 each)" \
      in text
