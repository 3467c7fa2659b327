"""experiments/reproduce.py: every committed result has a target (or a stated reason why
not), every script a target calls exists, and --list / --dry_run / a bad target name
behave. Runs only the listing paths (no experiment), in subprocesses, in a few seconds."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join("experiments", "reproduce.py")


def _run(*args):
  return subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=120, check=False)


def _committed_results():
  base = os.path.join(ROOT, "docs", "results")
  return {f"docs/results/{n}" for n in os.listdir(base)
          if os.path.isfile(os.path.join(base, n))}


def test_list_covers_every_committed_result():
  out = _run("--list")
  assert out.returncode == 0, out.stderr
  written = set(re.findall(r"^  writes: (\S+)$", out.stdout, re.M))
  excused = set(re.findall(r"^  not regenerable: (\S+) -- \S", out.stdout, re.M))
  assert written and excused
  assert not written & excused, written & excused
  missing = _committed_results() - written - excused
  assert not missing, f"docs/results files without a target or a reason: {sorted(missing)}"
  assert not (written | excused) - _committed_results(), "a target names a file not committed"
  # Every written file under docs/results/ is the destination of one of its commands.
  for path in written:
    assert re.search(rf"(cp \S+ |--out=){re.escape(path)}\b", out.stdout), path


def test_dry_run_names_only_existing_scripts_and_runs_nothing():
  out = _run("--dry_run")
  assert out.returncode == 0, out.stderr
  assert "[dry run]" in out.stdout and "would write: docs/results/" in out.stdout
  calls = re.findall(r"\$ (\S+) ((?:experiments|benchmarks)/\S+\.py)", out.stdout)
  assert len(calls) > 30
  for interpreter, script in calls:
    assert interpreter.endswith(os.path.basename(sys.executable)) or "python" in interpreter
    assert os.path.isfile(os.path.join(ROOT, script)), f"missing script {script}"
  assert re.search(r"\$ python ", out.stdout) is None, "a call not resolved to the interpreter"


def test_selected_targets_and_old_defaults():
  out = _run("--targets=table3,copyattack_budget", "--dry_run", "--old_defaults")
  assert out.returncode == 0, out.stderr
  assert re.findall(r"^== (\S+)", out.stdout, re.M) == ["table3", "copyattack_budget"]
  table3 = [l for l in out.stdout.splitlines() if "experiments/table3.py" in l]
  assert table3 and table3[0].endswith("--offsets=none --grid_extend=0")   # stale target
  assert "--offsets" not in out.stdout.split("== copyattack_budget")[1]   # current target


def test_unknown_target_is_one_error_line():
  out = _run("--targets=table3,no_such_target")
  assert out.returncode == 1
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error:") and "no_such_target" in lines[0]
  assert out.stdout == ""


def test_a_failing_command_stops_the_target(tmp_path, capsys, monkeypatch):
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("reproduce", os.path.join(ROOT, SCRIPT))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  marker = tmp_path / "after"
  monkeypatch.setattr(mod, "ROOT", str(tmp_path))
  monkeypatch.setattr(mod, "TARGETS", {"t": mod.Target(
      ("true", "exit 3", f"touch {marker}"), (), "0 s", False)})
  assert mod.main(["--targets=t"]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: target t: command 2 of 3 exited with 3")
  assert not marker.exists()
