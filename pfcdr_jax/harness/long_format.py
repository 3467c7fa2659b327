"""Per-seed metrics in long format: one CSV row per task x beta x method x seed x metric.

Table 1's markdown and wide CSV hold means and stds; the long CSV holds the values
they (and the tests over seeds) were computed from, so that every number of the table
can be recomputed from the repository. Columns (:data:`COLUMNS`)::

  task,beta,method,seed,metric,value

Two sources give the same records: the table's rows (:func:`from_rows`, what
``experiments/table1.py`` writes as ``table1_long.csv``) and a committed
``*_seeds.json`` (:func:`from_seeds`, ``experiments/long_csv.py``), whose cells are
``{"<task>-b<beta>-<model>-s<seed>": {"seed", "mae": {method: v}, "rmse": {...}, ...}}``.
Values are written with ``repr`` (they read back as the same floats); rows are sorted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.harness.summary import METRICS
from pfcdr_jax.harness.summary import Row

COLUMNS = ("task", "beta", "method", "seed", "metric", "value")


class Record(NamedTuple):
  """One value: a method's metric in one seed of one (task, beta)."""
  task: str
  beta: float
  method: str
  seed: int
  metric: str   # one of METRICS
  value: float


def from_rows(rows: Sequence[Row]) -> list[Record]:
  """The per-seed values behind table rows (``summary.summarize``), sorted.

  Raises:
    ValueError: the rows hold several base models (the columns have no base model).
  """
  models = sorted({r.base_model for r in rows})
  if len(models) > 1:
    raise ValueError(f"rows of several base models ({', '.join(models)}): the long CSV has "
                     "one row per task x beta x method x seed x metric")
  out = []
  for r in rows:
    for m, values in r.per_seed.items():
      if len(values) != len(r.seeds):
        raise ValueError(f"{r.task} beta={r.beta:g} {r.metric} {m}: {len(values)} values "
                         f"for {len(r.seeds)} seeds")
      out += [Record(r.task, r.beta, m, s, r.metric, v) for s, v in zip(r.seeds, values)]
  return sorted(out)


def read_seeds(path: str | Path) -> list[Record]:
  """The records of a committed ``*_seeds.json`` (:func:`from_seeds`).

  Raises:
    ValueError: unreadable file, not JSON, or not the Table 1 cell structure; the
      message names the file (and the cell).
  """
  return from_seeds(cache_lib.read_json(path), source=str(path))


def from_seeds(data: Any, *, source: str = "<seeds>") -> list[Record]:
  """The records of a seeds file's content, sorted.

  Each cell's task, beta and seed come from its ``task`` / ``beta`` / ``seed`` fields
  where present, else from its key ``<task>-b<beta>-<model>-s<seed>``; a field and the
  key must agree.

  Args:
    data: the parsed JSON: ``{"cells": {key: {"mae": {method: v}, "rmse": {...}, ...}}}``.
    source: the file's name, for the error messages.

  Raises:
    ValueError: a missing or malformed field, or two cells of one (task, beta, seed).
  """
  cells = data.get("cells") if isinstance(data, dict) else None
  if not isinstance(cells, dict) or not cells:
    raise ValueError(f"{source}: no 'cells' object: not a Table 1 seeds file")
  out, seen = [], {}
  for key, cell in cells.items():
    where = f"{source}: cell {key!r}"
    if not isinstance(cell, dict):
      raise ValueError(f"{where}: not an object")
    task, beta, seed = _cell_id(key, cell, where)
    if (task, beta, seed) in seen:
      raise ValueError(f"{where}: same task, beta and seed as cell {seen[task, beta, seed]!r} "
                       "(the long CSV has no base-model column)")
    seen[task, beta, seed] = key
    for metric in METRICS:
      values = cell.get(metric)
      if not isinstance(values, dict) or not values:
        raise ValueError(f"{where}: no {metric!r} field (method -> value)")
      for method, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
          raise ValueError(f"{where}: {metric} of {method!r} is {v!r}, not a number")
        out.append(Record(task, beta, method, seed, metric, float(v)))
  return sorted(out)


def _cell_id(key: str, cell: dict, where: str) -> tuple[str, float, int]:
  """(task, beta, seed) of a cell, from its fields and its key."""
  parsed = _parse_key(key)
  found = {}
  for i, (field, cast) in enumerate((("task", str), ("beta", float), ("seed", int))):
    from_key = parsed[i] if parsed else None
    if field in cell and cell[field] is not None:
      try:
        value = cast(cell[field])
      except (TypeError, ValueError):
        raise ValueError(f"{where}: {field} = {cell[field]!r} is not a {cast.__name__}"
                         ) from None
      if from_key is not None and value != from_key:
        raise ValueError(f"{where}: field {field} = {value!r} but the key says {from_key!r}")
    elif from_key is not None:
      value = from_key
    else:
      raise ValueError(f"{where}: no {field!r} (neither a field nor a key of the form "
                       "<task>-b<beta>-<model>-s<seed>)")
    found[field] = value
  return found["task"], found["beta"], found["seed"]


def _parse_key(key: str) -> tuple[str, float, int] | None:
  """``"<task>-b<beta>-<model>-s<seed>"`` (``cells.Cell.dirname``) -> (task, beta, seed)."""
  parts = key.rsplit("-", 2)
  if len(parts) != 3 or not parts[2].startswith("s") or not parts[2][1:].isdigit():
    return None
  task, sep, beta = parts[0].rpartition("-b")
  if not (sep and task):
    return None
  try:
    return task, float(beta), int(parts[2][1:])
  except ValueError:
    return None


def render_csv(records: Sequence[Record]) -> str:
  """The long CSV: a header of :data:`COLUMNS`, then the records sorted.

  Raises:
    ValueError: two records of one task x beta x method x seed x metric.
  """
  records = sorted(records)
  for prev, rec in zip(records, records[1:]):
    if prev[:5] == rec[:5]:
      raise ValueError(f"two values of {rec.task} beta={rec.beta:g} {rec.method} "
                       f"seed={rec.seed} {rec.metric}")
  lines = [",".join(COLUMNS)]
  for r in records:
    if r.metric not in METRICS:
      raise ValueError(f"metric {r.metric!r} is not one of {METRICS}")
    lines.append(",".join((_csv(r.task), f"{r.beta:g}", _csv(r.method), str(r.seed), r.metric,
                           "nan" if math.isnan(r.value) else repr(float(r.value)))))
  return "\n".join(lines) + "\n"


def _csv(text: str) -> str:
  return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def write_csv(records: Sequence[Record], path: str | Path) -> Path:
  """Writes :func:`render_csv` to `path` atomically; returns the path."""
  path = Path(path)
  cache_lib.atomic_write_text(path, render_csv(records))
  return path
