"""Name -> method: the registry of every method a run reports next to PFCDR.

Every method a run reports besides PFCDR itself -- TGT, EMCDR, the floors and the
Table 1 baselines -- is an :class:`Entry` of :data:`ENTRIES`, whose runner lives in
``baselines/runners.py``. `pipeline.run_pfcdr` calls ``selection.fit_predict_val`` for
each name in ``PFCDRConfig.baselines.names`` with the run's :class:`BaselineContext`,
caches the predictions, and stores the returned choices under
``results["selected"]["baselines"][name]``.

Adding a method: write ``pfcdr_jax/baselines/<method>.py`` with a
``fit_predict(..., pairs, cfg, key)`` that predicts (user, item) pairs, add to
``baselines/runners.py`` a runner ``_run_<method>(ctx, options, pairs, key)`` that
calls it, add one ``ENTRIES`` line here (grid, fixed defaults, quick options), and list
its name in a run's ``baselines.names`` (``table1.py --baselines``).

Names. ``"<Method>"`` or ``"<Method>(key=value,...)"``: the options override fields of
the method's config dataclass (``lr``, ``epochs``, ...), and a field fixed by an option
is removed from the selection grid. ``eps`` is the privacy budget of the DP methods
(``"DP-EMCDR(eps=1)"``, delta = 1e-5, analytic Gaussian mechanism; plain ``"DP-EMCDR"``
clips but adds no noise; ``"PriCDR-S"`` keeps its module's default epsilon = 0.5,
rating-level, classic mechanism); :data:`NAMES` lists the default set,
:func:`quick_names` the same methods with few epochs and one grid point (for CI).
"""

from __future__ import annotations

import re
import zlib
from typing import Any, Callable, NamedTuple

import jax

from pfcdr_jax.privacy import mechanisms

from pfcdr_jax.baselines.runners import (
    _run_bias_floor, _run_cmf, _run_dp_emcdr, _run_emcdr, _run_fedcdr, _run_global_mean,
    _run_item_mean, _run_lightgcn, _run_pf2cdr, _run_pfcdr_bilinear_dp, _run_pfcdr_dp,
    _run_pfcdr_plus,
    _run_ppgencdr, _run_pricdr, _run_ptupcdr, _run_source_user_mean, _run_sscdr, _run_tgt)

DP_EPSILONS = (0.5, 1.0, 5.0, 10.0)
DP_DELTA = 1e-5

# Part of every baseline's stage-cache key (pipeline.run_pfcdr): bump it when a change
# to a baseline's code changes its predictions, so cached predictions are not reused.
CACHE_VERSION = 2

# Per-method versions, for a change that moves one method's predictions only (keys of
# the other methods stay as they were): (base name, option that must be present) -> v.
# PFCDR+(eps) v1: fresh Laplace noise per epsilon (plus/release.epsilon_stream).
# v1 of every name with a budget: fresh noise per epsilon (method_key; for PFCDR+ also
# plus/release.epsilon_stream). Before it, one draw was rescaled across budgets.
METHOD_VERSIONS = {(base, "eps"): 1 for base in
                   ("PFCDR+", "DP-EMCDR", "PFCDR-DP", "PF2CDR", "PPGenCDR", "FedCDR",
                    "PriCDR-S", "PFCDR-Bilinear-DP")}
METHOD_VERSIONS[("PFCDR+", "offset_epsilon")] = 1   # its Gaussian draw also per epsilon
# v2: the prototypes are clipped around a released centre (their DP mean, 5 % of the
# budget; privacy/dp_prototypes.py), not around the mean item embedding.
METHOD_VERSIONS[("PFCDR-DP", None)] = 2
METHOD_VERSIONS[("PFCDR-Bilinear-DP", None)] = 2   # the same release as PFCDR-DP v2


def method_key(key: jax.Array, base: str, options: dict) -> jax.Array:
  """The PRNG key of method `base` with `options` under a run's baseline key.

  ``fold_in(key, crc32(base))``, then, for a name with a budget ``eps``, folded with
  ``mechanisms.epsilon_word(eps)``: fresh noise at every budget (issue 29).
  """
  k = jax.random.fold_in(key, zlib.crc32(base.encode()) & 0x7FFFFFFF)
  if "eps" in options:
    k = jax.random.fold_in(k, mechanisms.epsilon_word(float(options["eps"])))
  return k


def method_version(base: str, options: dict) -> int:
  """The per-method cache version of a parsed name (0 when none applies)."""
  return max((v for (b, opt), v in METHOD_VERSIONS.items()
              if b == base and (opt is None or opt in options)), default=0)

# The Table 1 methods beyond those every run reports (config.MAIN_BASELINES).
NAMES = ("LightGCN", "CMF", "SSCDR", "PTUPCDR",
         *(f"DP-EMCDR(eps={e:g})" for e in DP_EPSILONS), "PriCDR-S", "SourceUserMean",
         # The paper's private baselines we could build and PFCDR's DP variant.
         "FedCDR", "PF2CDR", "PPGenCDR", *(f"PFCDR-DP(eps={e:g})" for e in DP_EPSILONS),
         # PFCDR+ with its offset under per-rating Laplace DP (PlusConfig.rating_epsilon).
         *(f"PFCDR+(eps={e:g})" for e in DP_EPSILONS))


# PFCDR-DP over the same budgets as DP-EMCDR (privacy/dp_prototypes.py).
PFCDR_DP_NAMES = tuple(f"PFCDR-DP(eps={e:g})" for e in DP_EPSILONS)


class Entry(NamedTuple):
  """One method of the registry.

  Attributes:
    runner: ``(ctx, options, pairs, key) -> float[P]`` predictions of ``pairs`` =
      ``(user int[P], item int[P])``.
    grid: the settings tried on validation (first point = the default used when a
      grid collapses). Learning rates come from the paper's grid {0.001, 0.005,
      0.01, 0.02, 0.1}.
    defaults: fixed settings that differ from the module's defaults.
    quick: the options of ``--quick`` (few epochs, one grid point).
    key: which PRNG key the runner gets: ``"baselines"`` = the run's baseline key
      folded with the method's name; ``"emcdr"`` = the run's own EMCDR stage key
      (``method.StageKeys.emcdr``, shared with nothing else).
    reads: the sub-configs of ``config.PFCDRConfig`` the runner reads through
      ``ctx`` besides the pretrained models (part of its cache key).
  """
  runner: Callable
  grid: tuple[dict[str, Any], ...] = ({},)
  defaults: dict[str, Any] = {}
  quick: str = ""
  key: str = "baselines"
  reads: tuple[str, ...] = ()


# A name may end in "+" (PFCDR+).
_NAME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*\+?)(?:\((.*)\))?$")


def parse_name(name: str) -> tuple[str, dict[str, float | int | str]]:
  """Splits ``"Method(k=v,...)"`` into ``("Method", {k: v})`` (numbers parsed).

  Raises:
    ValueError: malformed name or unknown method.
  """
  m = _NAME_RE.match(name.strip())
  if m is None:
    raise ValueError(f"malformed baseline name {name!r}; expected 'Method' or "
                     "'Method(key=value,...)'")
  base, body = m.group(1), m.group(2)
  if base not in ENTRIES:
    raise ValueError(f"unknown baseline {base!r}; choose from {sorted(ENTRIES)}")
  options: dict[str, float | int | str] = {}
  for part in filter(None, (p.strip() for p in (body or "").split(","))):
    if "=" not in part:
      raise ValueError(f"baseline {name!r}: option {part!r} is not key=value")
    k, v = (s.strip() for s in part.split("=", 1))
    options[k] = _number(v)
  return base, options


def display_name(name: str) -> str:
  """Name shown in tables: the method plus its privacy budget, other options dropped."""
  base, options = parse_name(name)
  return f"{base}(eps={options['eps']:g})" if "eps" in options else base


def quick_names(names: tuple[str, ...] = NAMES) -> tuple[str, ...]:
  """`names` with the cheap options of each entry's ``quick`` appended."""
  out = []
  for name in names:
    base, options = parse_name(name)
    quick = dict(parse_name(f"{base}({ENTRIES[base].quick})")[1])
    quick.update(options)
    if not quick:
      out.append(base)
      continue
    out.append(f"{base}(" + ",".join(f"{k}={v:g}" if isinstance(v, (int, float)) else
                                     f"{k}={v}" for k, v in quick.items()) + ")")
  return tuple(out)


def _number(text: str) -> float | int | str:
  try:
    value = float(text)
  except ValueError:
    return text
  return int(value) if value.is_integer() and "." not in text and "e" not in text else value


# The registry: name -> Entry. A new method is a module plus one line here.
ENTRIES: dict[str, Entry] = {
    # The target scorer itself on cold users (what no transfer gives), and the floors.
    "TGT": Entry(_run_tgt),
    "GlobalMean": Entry(_run_global_mean),
    "ItemMean": Entry(_run_item_mean),
    # EMCDR's map trains like PFCDR's bridge: the run's BridgeConfig, its own stage key.
    "EMCDR": Entry(_run_emcdr, key="emcdr", reads=("bridge",)),
    "LightGCN": Entry(_run_lightgcn, ({"lr": 0.01}, {"lr": 0.005}),
                      {"epochs": 20, "batch_size": 4096}, "epochs=2,lr=0.01"),
    "CMF": Entry(_run_cmf, ({"lr": 0.01, "alpha": 0.5}, {"lr": 0.005, "alpha": 0.5},
                            {"lr": 0.001, "alpha": 0.5}, {"lr": 0.005, "alpha": 0.2}),
                 {"epochs": 20, "batch_size": 4096}, "epochs=2,lr=0.01,alpha=0.5"),
    "SSCDR": Entry(_run_sscdr, ({"lr": 0.005}, {"lr": 0.001}, {"lr": 0.02}), {"epochs": 100},
                   "epochs=10,lr=0.005"),
    "PTUPCDR": Entry(_run_ptupcdr, ({"lr": 0.005}, {"lr": 0.001}, {"lr": 0.01}, {"lr": 0.02}),
                     {"epochs": 10, "batch_size": 512}, "epochs=2,lr=0.005"),
    # Clip norm C: the embeddings' norms are data-dependent, so C is chosen on validation
    # (hyper-parameter search is not charged to the privacy budget, as is common).
    # Analytic Gaussian mechanism: valid for every epsilon, tighter than the classic one.
    "DP-EMCDR": Entry(_run_dp_emcdr, ({"clip_norm": 1.0}, {"clip_norm": 0.5},
                                      {"clip_norm": 2.0}, {"clip_norm": 4.0}),
                      {"mechanism": "analytic", "delta": DP_DELTA}, "clip_norm=1"),
    # PFCDR with Gaussian-mechanism prototypes (privacy/dp_prototypes.py); C chosen on
    # validation (centred prototypes' norms are ~0.8-2.8 on comedy2drama), K inside.
    "PFCDR-DP": Entry(_run_pfcdr_dp, ({"clip_norm": 1.0}, {"clip_norm": 0.5},
                                      {"clip_norm": 2.0}, {"clip_norm": 4.0}),
                      {"mechanism": "analytic", "delta": DP_DELTA}, "clip_norm=1",
                      reads=("inversion", "bridge", "topk")),
    "PriCDR-S": Entry(_run_pricdr, ({"lr": 0.01}, {"lr": 0.001}),
                      {"epochs": 20, "batch_size": 512}, "epochs=3,lr=0.01"),
    # Item bias shrunk by a pseudo-count lambda (chosen on validation) + the user's
    # source offset; one scalar of the user's source data (baselines/bias_floor.py).
    "BiasFloor": Entry(_run_bias_floor, tuple({"shrinkage": float(k)} for k in
                                              (0, 2, 5, 10, 25, 50, 100)),
                       {"clip": True}, "shrinkage=10"),
    # Ours: one grid point here; method_plus selects its settings itself.
    "PFCDR+": Entry(_run_pfcdr_plus, reads=("inversion", "bridge")),
    # Ours, sending exactly what PFCDR sends (the prototypes, no user statistic): PFCDR+
    # with its offset and crowd scalars off (issue 29's prototype-only method).
    "PFCDR-Bilinear": Entry(_run_pfcdr_plus, defaults={"use_offset": False, "crowd": False},
                            reads=("inversion", "bridge")),
    # PFCDR-Bilinear on prototypes released through PFCDR-DP's Gaussian mechanism
    # (user-level, add/remove; C chosen on validation): ours with a finite user-level
    # epsilon (issue 29). Plain "PFCDR-Bilinear-DP" clips without noise.
    "PFCDR-Bilinear-DP": Entry(_run_pfcdr_bilinear_dp, ({"clip_norm": 1.0},
                                                        {"clip_norm": 0.5},
                                                        {"clip_norm": 0.25},
                                                        {"clip_norm": 2.0}),
                               {"mechanism": "analytic", "delta": DP_DELTA,
                                "use_offset": False, "crowd": False}, "clip_norm=1",
                               reads=("inversion", "bridge")),
    # Federated CDR simulated in rounds (baselines/fedcdr.py); no DP unless eps is given
    # ("FedCDR(eps=1,clip_norm=...)").
    "FedCDR": Entry(_run_fedcdr, ({"lr": 0.01}, {"lr": 0.02}, {"lr": 0.005}),
                    {"rounds": 200, "local_batch": 64}, "rounds=10,lr=0.01"),
    # P2FCDR-style silos (baselines/pf2cdr.py): plain "PF2CDR" keeps the module's
    # epsilon = 1 (analytic Gaussian, delta = 1e-5); C chosen on validation.
    "PF2CDR": Entry(_run_pf2cdr, ({"clip_norm": 1.0}, {"clip_norm": 0.5}, {"clip_norm": 2.0},
                                  {"clip_norm": 4.0}),
                    {"mechanism": "analytic", "delta": DP_DELTA, "epochs": 10},
                    "epochs=2,clip_norm=1"),
    # A DP-SGD-trained source generator of preference vectors (baselines/ppgencdr.py):
    # plain "PPGenCDR" keeps the module's epsilon = 1 (user-level, delta = 1e-5, over
    # all generator steps); the per-user clip C is chosen on validation (per-user
    # gradient norms are ~0.02-0.09 on comedy2drama). Each point retrains the
    # generator (~1 min on 2 cores), hence two points.
    "PPGenCDR": Entry(_run_ppgencdr, ({"clip_norm": 0.1}, {"clip_norm": 0.03}),
                      {"delta": DP_DELTA, "gen_steps": 200, "epochs": 10},
                      "gen_steps=5,epochs=2,clip_norm=0.1"),
    "SourceUserMean": Entry(_run_source_user_mean, ({"shrinkage": 0.0}, {"shrinkage": 5.0},
                                                    {"shrinkage": 20.0}), {}, "shrinkage=0"),
}
