"""The cells of a seed sweep: what one run is, its config, whether it finished, loading it.

A *cell* is one ``run_pfcdr`` call: task x beta x base model x seed, with its own
workdir. :func:`is_finished` says whether a cell's ``results.json`` (written atomically
at the very end of ``run_pfcdr``) exists, was made with the same configuration and holds
every requested method; :func:`load_cell` reads a finished cell's results and per-rating
test predictions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.harness import records
from pfcdr_jax import config as config_lib
from pfcdr_jax.baselines import registry
from pfcdr_jax.baselines import selection

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Cell:
  """One run: task x beta x base model x seed."""
  task: str
  beta: float
  base_model: str
  seed: int

  @property
  def dirname(self) -> str:
    return f"{self.task}-b{self.beta:g}-{self.base_model}-s{self.seed}"


def make_cells(tasks: Sequence[str], betas: Sequence[float], base_models: Sequence[str],
               num_seeds: int) -> list[Cell]:
  """All cells of a sweep, seeds innermost (seed = 0..num_seeds-1)."""
  if num_seeds < 1:
    raise ValueError(f"num_seeds must be >= 1, got {num_seeds}")
  return [Cell(t, float(b), m, s) for t in tasks for b in betas for m in base_models
          for s in range(num_seeds)]


def cell_config(base: config_lib.PFCDRConfig, cell: Cell) -> config_lib.PFCDRConfig:
  return config_lib.override(base, {"data.task": cell.task, "split.beta": cell.beta,
                                    "pretrain.base_model": cell.base_model,
                                    "seed": cell.seed})


def expected_methods(cfg: config_lib.PFCDRConfig) -> tuple[str, ...]:
  return ("PFCDR",) + tuple(cfg.baselines.names)


def is_finished(workdir: Path, cfg: config_lib.PFCDRConfig) -> bool:
  """True iff `workdir` holds a complete run of `cfg` with every requested method.

  Complete = results.json and predictions-test.npz exist, config.json decides what `cfg`
  decides (``records.decisions``: paths, execution-only knobs and the method list left
  out; a field added to the config after the cell ran takes its
  default, the behaviour the cell ran with), and each method ran the registry's current
  selection grid.
  """
  workdir = Path(workdir)
  res_path, cfg_path = workdir / "results.json", workdir / "config.json"
  if not (res_path.exists() and cfg_path.exists()):
    return False
  try:
    results = json.loads(res_path.read_text())
    raw = json.loads(cfg_path.read_text())
    stored = config_lib.from_dict(config_lib.PFCDRConfig, raw)
  except (OSError, ValueError, TypeError) as e:
    log.info("cell %s: unreadable or older config.json (%s); rerunning", workdir.name, e)
    return False
  stale = _stale_absent_fields(raw, cfg)
  if stale:
    log.info("cell %s predates %s (it ran the behaviour that field replaced); rerunning",
             workdir.name, stale)
    return False
  if records.decisions(stored) != records.decisions(cfg):
    log.info("cell %s: the configuration changed; rerunning", workdir.name)
    return False
  missing = set(expected_methods(cfg)) - set(results.get("methods", {}))
  if missing:
    log.info("cell %s lacks %s; rerunning (cached stages are reused)", workdir.name,
             sorted(missing))
    return False
  chosen = results.get("selected", {}).get("baselines", {})
  for name in cfg.baselines.names:
    # A baseline's settings live in the registry, not in the config: compare the grid.
    ran = [{k: v for k, v in g.items() if k != "val_mae"}
           for g in chosen.get(name, {}).get("grid", [])]
    want = [cache_lib.jsonable(p) for p in selection.selection_grid(name)]
    if json.dumps(ran, sort_keys=True) != json.dumps(want, sort_keys=True):
      log.info("cell %s: the selection grid of %s changed; rerunning", workdir.name, name)
      return False
  return (workdir / "predictions-test.npz").exists()


def _stale_absent_fields(raw: Any, cfg: Any) -> list[str]:
  """Fields of `cfg` marked ``absent_is_stale`` (``config.DNN_ONLY``) that `cfg` decides
  but the stored config dict `raw` lacks: a cell written before such a field existed ran
  the behaviour its default replaced."""
  out = []
  raw = raw if isinstance(raw, dict) else {}
  for f in dataclasses.fields(cfg):
    value = getattr(cfg, f.name)
    if dataclasses.is_dataclass(value):
      out += [f"{f.name}.{p}" for p in _stale_absent_fields(raw.get(f.name), value)]
    elif (f.metadata.get("absent_is_stale") and config_lib.decides(cfg, f)
          and f.name not in raw):
      out.append(f.name)
  return out


# --- loading ------------------------------------------------------------------------------

class CellResult(NamedTuple):
  """A finished cell: its results.json and per-rating test predictions by display name."""
  cell: Cell
  results: dict[str, Any]
  user: np.ndarray            # int[T]
  rating: np.ndarray          # float32[T]
  preds: dict[str, np.ndarray]  # display name -> float32[T]
  names: dict[str, str]       # display name -> name as run


def display_name(name: str) -> str:
  return name if name == "PFCDR" else registry.display_name(name)


def load_cell(workdir: str | Path) -> CellResult:
  """Reads a finished cell's results.json and predictions-test.npz."""
  workdir = Path(workdir)
  results = json.loads((workdir / "results.json").read_text())
  hit = cache_lib.StageCache(workdir).load("predictions", "test")
  if hit is None:
    raise FileNotFoundError(f"{workdir}/predictions-test.npz is missing or unreadable")
  arrays, _ = hit
  preds, names = {}, {}
  for key, arr in arrays.items():
    if not key.startswith("pred_"):
      continue
    name = key[len("pred_"):]
    disp = display_name(name)
    if disp in preds:
      raise ValueError(f"{workdir}: methods {names[disp]!r} and {name!r} share the display "
                       f"name {disp!r}")
    preds[disp], names[disp] = arr.astype(np.float32), name
  cell = Cell(results["task"], float(results["beta"]), results["base_model"],
              int(results["seed"]))
  return CellResult(cell, results, arrays["user"], arrays["rating"].astype(np.float32), preds,
                    names)
