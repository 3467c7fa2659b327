"""Old import paths of moved modules, kept one release with a DeprecationWarning.

``install({"pfcdr_jax.bridge": "pfcdr_jax.pfcdr.bridge", ...})`` puts a finder on
``sys.meta_path`` that answers an old dotted name with the module now at the new one (the
same module object, so state and monkeypatches are shared) and warns once per name. A
module that was split maps to the tuple of its parts: the old name is then a module whose
attributes are looked up in each part, in order.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
import types
from typing import Mapping, Union

Target = Union[str, tuple[str, ...]]


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Finds and loads the old names of ``aliases`` as their new modules."""

  def __init__(self, aliases: Mapping[str, Target]):
    self.aliases = dict(aliases)

  def find_spec(self, fullname, path=None, target=None):  # pylint: disable=unused-argument
    if fullname not in self.aliases:
      return None
    return importlib.util.spec_from_loader(fullname, self)

  def create_module(self, spec):
    new = self.aliases[spec.name]
    parts = (new,) if isinstance(new, str) else tuple(new)
    warnings.warn(f"{spec.name} has moved to {', '.join(parts)}; the old path will be "
                  "removed in the next release", DeprecationWarning, stacklevel=3)
    if len(parts) == 1:
      return importlib.import_module(parts[0])
    return _joined(spec.name, [importlib.import_module(p) for p in parts])

  def exec_module(self, module):  # the module was executed under its new name
    pass


def _joined(name: str, modules: list[types.ModuleType]) -> types.ModuleType:
  """A module called ``name`` whose attributes are those of ``modules`` (first wins)."""
  joined = types.ModuleType(name, f"Old path of {', '.join(m.__name__ for m in modules)}.")

  def getattr_(attr: str):
    for m in modules:
      if hasattr(m, attr):
        return getattr(m, attr)
    raise AttributeError(f"module {name!r} has no attribute {attr!r}")

  joined.__getattr__ = getattr_
  return joined


def install(aliases: Mapping[str, Target]) -> None:
  """Registers ``old -> new`` dotted module names (idempotent)."""
  for finder in sys.meta_path:
    if isinstance(finder, _AliasFinder):
      finder.aliases.update(aliases)
      return
  sys.meta_path.append(_AliasFinder(aliases))
