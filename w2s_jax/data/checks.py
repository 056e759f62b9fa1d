"""Data sanity checks that run before the first stage trains.

Data that loads can still make a run worthless only minutes later: one class in a training file
trains for minutes and ends with PGR nan and AUROC null; a split smaller than one batch trains
for zero steps. `check_splits` refuses such data with a DataError naming the split.
"""
import numpy as np

from w2s_jax.errors import DataError


def check_splits(datasets: dict, num_classes: int, batch_sizes: dict | None = None, *,
                 label_names=(), allow_empty_text: bool = False) -> None:
  """Raise DataError for the first problem among `datasets` (name -> Dataset, or anything with
  `labels` [N] and `lengths` [N] or [N, K]), every one used for training or scoring:

    - no rows, or fewer rows than one batch of `batch_sizes[name]` (names absent: any count);
    - labels outside [0, num_classes), or fewer than 2 classes present (num_classes 0: not a
      classification, e.g. chess moves; the class checks are skipped);
    - an empty text (a length 0), unless `allow_empty_text`.
  `label_names`: the classes' names, for the messages.
  """
  batch_sizes = batch_sizes or {}
  for name, ds in datasets.items():
    labels, lengths = np.asarray(ds.labels), np.asarray(ds.lengths)
    n = len(labels)
    if n == 0:
      raise DataError(f"split {name!r} has no rows")
    batch = batch_sizes.get(name, 0)
    if n < batch:
      raise DataError(f"split {name!r} has {n} rows, fewer than one batch of {batch}: it would "
                      "train for no step (lower the batch size or add rows)")
    if not allow_empty_text:
      empty = np.flatnonzero((lengths.reshape(n, -1) == 0).any(-1))
      if len(empty):
        raise DataError(f"split {name!r}: {len(empty)} empty text(s), the first at row "
                        f"{int(empty[0])}")
    if not num_classes:
      continue
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
      raise DataError(f"split {name!r}: label {int(labels[bad[0]])} at row {int(bad[0])} is "
                      f"outside the {num_classes} classes")
    counts = np.bincount(labels, minlength=num_classes)
    if np.count_nonzero(counts) < 2:
      names = list(label_names)
      present = ", ".join(f"{names[c] if c < len(names) else c!r}: {counts[c]}"
                          for c in np.flatnonzero(counts))
      raise DataError(f"split {name!r} holds a single class ({present} of {n} rows): a model "
                      "trained or scored on it measures nothing (PGR nan, AUROC undefined); "
                      "check the label field and the file")
