"""Planned contrasts: the method pairs declared in a committed file, and their Holm family.

The pairs (a, b) a table tests over seeds are not chosen by the code or after the
numbers: :func:`load_contrasts` reads them from a JSON file (the experiments keep it in
``experiments/configs/planned_contrasts.json``) that states when they were declared::

  {"declared": "2026-12-05, before ...", "family": "...", "contrasts": [["a", "b"], ...]}

``summary.summarize`` tests each pair in every row (task x beta x base model x metric)
that has both methods. :func:`adjust` then corrects the p-values for multiplicity with
``significance.holm``: the family is every contrast test the table reports (each pair
that ran x each row), the t-test p-values one family and the Wilcoxon p-values another
of the same tests.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import NamedTuple, Sequence

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.harness.cells import display_name
from pfcdr_jax.harness.significance import ALPHA
from pfcdr_jax.harness.significance import SeedTest
from pfcdr_jax.harness.significance import holm
from pfcdr_jax.harness.summary import Row


@dataclasses.dataclass(frozen=True)
class PlannedContrasts:
  """The declared pairs (a, b): a's metric minus b's, tested over seeds."""
  pairs: tuple[tuple[str, str], ...]
  declared: str      # when, and before which runs, the pairs were fixed
  family: str = ""   # the file's description of the multiplicity family
  source: str = ""   # the file they were read from, as shown in the tables


def load_contrasts(path: str | Path, *, shown_as: str | None = None) -> PlannedContrasts:
  """Reads and checks a planned-contrasts file.

  Args:
    path: the JSON file: ``{"declared": str, "contrasts": [[a, b], ...]}`` and an
      optional ``"family"`` string (other keys, e.g. notes, are ignored).
    shown_as: how the tables name the file (default: ``path``).

  Raises:
    ValueError: the file is missing, not JSON, a field is missing or malformed, or a
      name is not a method's table name (``cells.display_name``); the message names
      the file.
  """
  data = cache_lib.read_json(path, "planned contrasts ")
  if not isinstance(data, dict):
    raise ValueError(f"planned contrasts {path}: expected a JSON object")
  declared, raw = data.get("declared"), data.get("contrasts")
  if not isinstance(declared, str) or not declared.strip():
    raise ValueError(f"planned contrasts {path}: no 'declared' note (when the pairs were "
                     "fixed, and before which runs)")
  if not isinstance(raw, list) or not raw:
    raise ValueError(f"planned contrasts {path}: 'contrasts' must be a non-empty list of "
                     "[a, b] pairs")
  pairs = []
  for i, pair in enumerate(raw):
    if (not isinstance(pair, list) or len(pair) != 2
        or not all(isinstance(m, str) and m.strip() for m in pair) or pair[0] == pair[1]):
      raise ValueError(f"planned contrasts {path}: contrasts[{i}] = {pair!r} is not a pair "
                       "of two different method names")
    for m in pair:
      try:
        shown = display_name(m)
      except ValueError as e:
        raise ValueError(f"planned contrasts {path}: contrasts[{i}]: {e}") from None
      if shown != m:
        raise ValueError(f"planned contrasts {path}: contrasts[{i}]: {m!r} is shown in the "
                         f"tables as {shown!r}; write that")
    pairs.append((pair[0], pair[1]))
  dup = sorted({p for p in pairs if pairs.count(p) > 1})
  if dup:
    raise ValueError(f"planned contrasts {path}: listed twice: {dup}")
  family = data.get("family", "")
  if not isinstance(family, str):
    raise ValueError(f"planned contrasts {path}: 'family' must be a string")
  return PlannedContrasts(tuple(pairs), declared.strip(), family,
                          str(path) if shown_as is None else shown_as)


class AdjustedContrast(NamedTuple):
  """One contrast test of a table with its Holm-adjusted p-values."""
  row: Row
  test: SeedTest
  p_ttest_holm: float      # Holm over the table's contrast t-tests (nan: no test)
  p_wilcoxon_holm: float   # Holm over the table's contrast Wilcoxon tests

  @property
  def a_better_holm(self) -> bool:
    """a's metric is lower and the Holm-adjusted t-test p-value is below alpha."""
    return bool(self.test.mean_diff < 0 and self.p_ttest_holm < ALPHA)


def adjust(rows: Sequence[Row]) -> list[AdjustedContrast]:
  """Every contrast test of `rows` (row by row, in their order) with Holm's correction.

  The family is all of them: each planned pair that ran x each row (task x beta x base
  model x metric); the t-test and the Wilcoxon p-values are adjusted as two families
  of the same tests. A test without a p-value (one seed) stays nan and is not counted.
  """
  tests = [(r, t) for r in rows for t in r.contrasts]
  p_t = holm([t.p_ttest for _, t in tests])
  p_w = holm([t.p_wilcoxon for _, t in tests])
  return [AdjustedContrast(r, t, float(a), float(b))
          for (r, t), a, b in zip(tests, p_t, p_w)]


def family_size(adjusted: Sequence[AdjustedContrast]) -> tuple[int, int]:
  """(t-test, Wilcoxon) family sizes: the contrast tests that have a p-value."""
  return (sum(not math.isnan(a.test.p_ttest) for a in adjusted),
          sum(not math.isnan(a.test.p_wilcoxon) for a in adjusted))
