"""The one way a script's flags become config overrides, for both papers.

Each paper's presets (``configs/pfcdr.py``, ``configs/copyattack.py``) name, per flag,
the dotted config path or paths it sets (``FLAG_PATHS``); :func:`overrides` turns flag
values into ``{path: value}`` for ``pfcdr_jax.config.override``, and :func:`from_flags`
reads them from absl's parsed flags, optionally only those given on the command line (a
given flag beats a preset, a preset beats a flag's default).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Union

Paths = Union[str, tuple[str, ...]]
Convert = Callable[[str, Any], Any]


def overrides(values: Mapping[str, Any], flag_paths: Mapping[str, Paths],
              convert: Optional[Convert] = None) -> dict[str, Any]:
  """``{dotted path: value}`` of the flags in ``values`` (name -> value).

  Args:
    values: flag name -> the flag's value.
    flag_paths: flag name -> the config path (or tuple of paths) it sets.
    convert: ``convert(name, value)``: the value as the config field holds it.

  Raises:
    ValueError: a flag without a config field, or what ``convert`` raises.
  """
  unknown = set(values) - set(flag_paths)
  if unknown:
    raise ValueError(f"no config field for flags {sorted(unknown)}")
  out = {}
  for name, value in values.items():
    value = convert(name, value) if convert else value
    paths = flag_paths[name]
    for path in (paths,) if isinstance(paths, str) else paths:
      out[path] = value
  return out


def from_flags(flag_values, flag_paths: Mapping[str, Paths],
               convert: Optional[Convert] = None, *, given: Optional[bool] = None
               ) -> dict[str, Any]:
  """:func:`overrides` of the defined, non-None flags of absl's ``flag_values``.

  Args:
    flag_values: ``absl.flags.FLAGS`` (parsed).
    flag_paths, convert: as in :func:`overrides`.
    given: True: only flags set on the command line; False: only those left at their
      default; None: both.
  """
  names = [n for n in flag_paths if n in flag_values and flag_values[n].value is not None
           and (given is None or flag_values[n].present == given)]
  return overrides({n: flag_values[n].value for n in names}, flag_paths, convert)
