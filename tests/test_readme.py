"""README.md's Python snippets run, in order, in one namespace (as a reader pastes them)."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_snippets_run():
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
  assert len(blocks) >= 3
  namespace = {}
  for i, block in enumerate(blocks):
    exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)  # pylint: disable=exec-used
  assert namespace["out"].prototypes.shape == (16, namespace["V"].shape[1])
  assert namespace["fit"].pred.shape == (len(namespace["data"].target_test.user),)
