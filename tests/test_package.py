"""The package's shape: its public names, the old import paths, and the layout rules."""
import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

import pfcdr_jax

PKG = Path(pfcdr_jax.__file__).resolve().parent
MAX_LINES = 500
TOP_LEVEL_MODULES = {"__init__.py", "config.py"}


def _modules():
  return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_public_name_resolves():
  assert len(set(pfcdr_jax.__all__)) == len(pfcdr_jax.__all__)
  for name in pfcdr_jax.__all__:
    assert getattr(pfcdr_jax, name) is not None, name


def _import_old(name):
  sys.modules.pop(name, None)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    module = importlib.import_module(name)
  return module, [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]


def test_old_import_path_warns_and_is_the_same_module():
  old, said = _import_old("pfcdr_jax.bridge")
  assert old is importlib.import_module("pfcdr_jax.pfcdr.bridge")
  assert any("pfcdr_jax.pfcdr.bridge" in m for m in said)


def test_old_path_of_a_split_module_reaches_every_part():
  old, said = _import_old("pfcdr_jax.pipeline")
  from pfcdr_jax.harness import pipeline, stages  # pylint: disable=g-import-not-at-top
  assert old.run_pfcdr is pipeline.run_pfcdr and old.prepare is stages.prepare
  assert any("pfcdr_jax.harness.stages" in m for m in said)
  with pytest.raises(AttributeError, match="no attribute 'nope'"):
    old.nope  # pylint: disable=pointless-statement


def test_no_module_over_the_line_limit():
  long = {str(p.relative_to(PKG)): n for p in _modules()
          if (n := len(p.read_text().splitlines())) > MAX_LINES}
  assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_only_init_and_config_at_the_package_root():
  root = {p.name for p in PKG.glob("*.py")}
  assert root <= TOP_LEVEL_MODULES, sorted(root - TOP_LEVEL_MODULES)


@pytest.mark.parametrize("forbidden", ["experiments", "benchmarks", "configs", "cli"])
def test_the_package_imports_no_script_or_benchmark(forbidden):
  bad = []
  for p in _modules():
    for node in ast.walk(ast.parse(p.read_text())):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import)
               else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
               else [])
      bad += [f"{p.relative_to(PKG)}: {n}" for n in names if n.split(".")[0] == forbidden]
  assert not bad, bad


def test_the_package_import_leaves_the_heavy_runners_for_first_use():
  """``import pfcdr_jax`` (every main job's start-up) must not pull in scikit-learn or
  the CopyAttack runner; the lazily exported names still resolve to the real objects."""
  import subprocess
  import sys
  code = ("import sys, pfcdr_jax; "
          "assert 'sklearn' not in sys.modules and "
          "'pfcdr_jax.copyattack.pipeline' not in sys.modules, 'eager'; "
          "from pfcdr_jax import run_privacy, run_copyattack, CopyAttackConfig; "
          "from pfcdr_jax.privacy.study import run_privacy as rp; "
          "assert run_privacy is rp and CopyAttackConfig.__module__.endswith('config')")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
