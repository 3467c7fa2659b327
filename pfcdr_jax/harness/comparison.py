"""The paper's comparison over seeds: runs the cells of a sweep, resuming where it stopped.

:func:`run_cells` skips a cell that is finished (``cells.is_finished``: its
``results.json`` exists, was made with the same configuration and holds every requested
method), so an interrupted sweep resumes where it stopped; cells share one stage cache,
so changing only the method list (or PFCDR's own settings) reuses the pretrained models
and every baseline's cached predictions. The finished cells are aggregated by
``summary.summarize``, tested in ``significance`` and rendered by ``tables`` and ``plots``.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Sequence

import jax

from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import pipeline
from pfcdr_jax.harness import pretraining
from pfcdr_jax.infra import progress
from pfcdr_jax.harness.cells import Cell
from pfcdr_jax.harness.cells import cell_config
from pfcdr_jax.harness.cells import is_finished

log = logging.getLogger(__name__)


SEED_STACK_MODES = ("auto", "on", "off")


def use_seed_stack(mode: str) -> bool:
  """``--seed_stack``: "on", "off", or "auto" = on when JAX runs on an accelerator.

  On 2 CPU cores a stack of 3 comedy2drama seeds took 0.8x the speed of one seed after
  another (``experiments/bench_seeds.py``; BUILD_NOTES §2, pretraining): CPU pretraining
  is bound by arithmetic, not by launches, so "auto" leaves CPU runs sequential. The
  parameters came out bit-identical either way in that measurement.
  """
  if mode not in SEED_STACK_MODES:
    raise ValueError(f"seed_stack must be one of {SEED_STACK_MODES}, got {mode!r}")
  if mode == "auto":
    return jax.default_backend() != "cpu"
  return mode == "on"


def _release_compiled() -> None:
  """Drops JAX's compiled executables after a cell.

  Every cell has its own array shapes, so its jitted functions compile afresh and the
  executables of earlier cells are never used again. Kept, they add up: a 10-seed
  Table 1 sweep in one process died in its 16th cell with "LLVM compilation error:
  Cannot allocate memory" (each CPU executable holds its own memory mappings, and a
  process may have at most vm.max_map_count = 65,530 of them).
  """
  jax.clear_caches()
  gc.collect()


def run_cells(base_cfg: config_lib.PFCDRConfig, cells: Sequence[Cell], root: str | Path,
              *, seed_stack: bool = False) -> list[Path]:
  """Runs every unfinished cell under ``root/<cell.dirname>``; returns all workdirs.

  Every cell uses ``base_cfg.cache.dir`` (set it to share pretraining across cells;
  None gives each cell its own ``<workdir>/cache``). With ``seed_stack`` the
  unfinished seeds of each (task, beta, base model) first pretrain together, vmapped
  over the seed axis where the domains' shapes allow (:func:`pretraining.pretrain_seeds`);
  the cells then load those parameters from the stage cache.
  """
  root = Path(root)
  dirs = [root / c.dirname for c in cells]
  todo = [(c, d) for c, d in zip(cells, dirs) if not is_finished(d, cell_config(base_cfg, c))]
  log.info("%d cells, %d finished, %d to run", len(cells), len(cells) - len(todo), len(todo))
  t0 = time.perf_counter()
  if seed_stack:
    groups: dict[tuple, list[tuple[Cell, Path]]] = {}
    for cell, workdir in todo:
      groups.setdefault((cell.task, cell.beta, cell.base_model), []).append((cell, workdir))
    for group in groups.values():
      if len(group) > 1:
        stacked = pretraining.pretrain_seeds([cell_config(base_cfg, c) for c, _ in group],
                                             [d for _, d in group])
        log.info("seed-stacked pretraining of %s: %s", group[0][0].dirname, stacked)
  with progress.bar(len(todo), "cells", unit="cell") as bar:
    for i, (cell, workdir) in enumerate(todo):
      log.info("cell %d/%d: %s", i + 1, len(todo), cell.dirname)
      pipeline.run_pfcdr(cell_config(base_cfg, cell), workdir)
      _release_compiled()
      bar.update()
      done = time.perf_counter() - t0
      eta = done / (i + 1) * (len(todo) - i - 1)
      log.info("cell %d/%d done (%.0fs elapsed, %.1f min/cell, ETA %.0f min)", i + 1,
               len(todo), done, done / (i + 1) / 60, eta / 60)
  return dirs
