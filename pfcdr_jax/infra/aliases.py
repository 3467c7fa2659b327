"""Old import paths of moved modules, kept one release with a DeprecationWarning.

``install({"pfcdr_jax.inversion": "pfcdr_jax.pfcdr.inversion", ...})`` puts a finder on
``sys.meta_path`` that answers an old dotted name with the module now at the new one (the
same module object, so state and monkeypatches are shared) and warns once per name.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Mapping


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Finds and loads the old names of ``aliases`` as their new modules."""

  def __init__(self, aliases: Mapping[str, str]):
    self.aliases = dict(aliases)

  def find_spec(self, fullname, path=None, target=None):  # pylint: disable=unused-argument
    if fullname not in self.aliases:
      return None
    return importlib.util.spec_from_loader(fullname, self)

  def create_module(self, spec):
    new = self.aliases[spec.name]
    warnings.warn(f"{spec.name} has moved to {new}; the old path will be removed in the "
                  "next release", DeprecationWarning, stacklevel=3)
    return importlib.import_module(new)

  def exec_module(self, module):  # the module was executed under its new name
    pass


def install(aliases: Mapping[str, str]) -> None:
  """Registers ``old -> new`` dotted module names (idempotent)."""
  for finder in sys.meta_path:
    if isinstance(finder, _AliasFinder):
      finder.aliases.update(aliases)
      return
  sys.meta_path.append(_AliasFinder(aliases))
