"""The sanity gate: every learned stage of a run against the floor it must beat.

A stage is compared, on the data it was selected on, with the simplest predictor it has
to improve on:

* a pretraining stage (``pretrain_source`` / ``pretrain_target``): its held-out MSE
  against the held-out MSE of the mean predictor (the training ratings' mean);
* a method (every name of ``results["methods"]``): its validation MAE against the
  validation MAE of GlobalMean and of ItemMean. It must beat each of them clearly:
  the mean paired difference of absolute errors over the validation ratings plus
  :data:`MARGIN_SE` standard errors of that mean must be below 0 (a method that only
  ties a floor, within the noise of the validation ratings, fails: the test ratings
  may well rank it behind). The record holds the floor that binds (the one with the
  larger upper bound). ItemMean is held to GlobalMean; GlobalMean is the reference and
  passes by definition.

A record is ``{"ok": bool, "value": float, "floor": float, "floor_name": str}``
(``results.json["sanity"]``, keyed by stage or method name). A failure is one warning
line naming the stage, both numbers and a likely cause (:func:`failure_line`); with
``--strict`` (``PFCDRConfig.strict``) it is an error before later stages run.

What a failure means: the stage did not learn anything its floor does not already know
on this data. That is either a broken model (pretraining that stayed at its start,
cold users with untrained embeddings) or a method that honestly loses to the floor
here; the likely cause in the warning tells the two apart where the numbers can.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

# The floors (baselines.floors, bias_floor, source_user_mean): reported, never learned
# representations; they get records too so that a reader can compare every row.
FLOOR_METHODS = ("GlobalMean", "ItemMean", "SourceUserMean", "BiasFloor")
PRETRAIN_STAGES = ("pretrain_source", "pretrain_target")
MEAN_FLOOR = "mean predictor"
# The floors every method is held to, and how clearly it must beat them (standard errors
# of the mean paired difference of absolute errors on the validation ratings).
FLOORS = ("GlobalMean", "ItemMean")
MARGIN_SE = 2.0
# A method whose validation MAE exceeds its floor by this factor is far off the rating
# scale, not merely worse: the warning names an untrained representation as the cause.
FAR_OFF = 1.5


class SanityError(ValueError):
  """A learned stage failed its gate under ``--strict`` (the scripts print one line)."""


def _record(ok: bool, value: float, floor: float, floor_name: str) -> dict[str, Any]:
  return {"ok": bool(ok), "value": float(value), "floor": float(floor),
          "floor_name": floor_name}


def _below(value: float, floor: float) -> bool:
  return math.isfinite(value) and math.isfinite(floor) and value < floor


def pretrain_record(meta: Mapping[str, Any]) -> dict[str, Any]:
  """A pretraining stage's record from its metadata (``heldout_mse``, ``mean_mse``)."""
  value, floor = float(meta["heldout_mse"]), float(meta["mean_mse"])
  return _record(_below(value, floor), value, floor, MEAN_FLOOR)


def paired_upper_bound(pred, floor_pred, rating, z: float = MARGIN_SE) -> float:
  """Upper bound of the mean paired difference ``|pred - r| - |floor - r|``: its mean
  plus ``z`` standard errors (NaN without ratings or with non-finite predictions)."""
  pred, floor_pred, rating = (np.asarray(x, np.float64) for x in (pred, floor_pred, rating))
  if rating.size == 0 or not (np.all(np.isfinite(pred)) and np.all(np.isfinite(floor_pred))):
    return float("nan")
  d = np.abs(pred - rating) - np.abs(floor_pred - rating)
  se = float(np.std(d, ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("inf")
  return float(np.mean(d) + z * se)


def _mae(pred, rating) -> float:
  pred, rating = np.asarray(pred, np.float64), np.asarray(rating, np.float64)
  return float(np.mean(np.abs(pred - rating))) if rating.size else float("nan")


def method_record(name: str, val_pred, val_rating, floor_preds: Mapping[str, Any]
                  ) -> dict[str, Any]:
  """A method's record: its validation MAE against GlobalMean's and ItemMean's.

  Args:
    name: the method's name; val_pred: its validation predictions.
    val_rating: the validation ratings.
    floor_preds: validation predictions of "GlobalMean" and "ItemMean".
  """
  value = _mae(val_pred, val_rating)
  if name == "GlobalMean":
    return _record(True, value, value, "GlobalMean (the reference)")
  ref = ("GlobalMean",) if name == "ItemMean" else FLOORS
  bounds = {f: paired_upper_bound(val_pred, floor_preds[f], val_rating) for f in ref}
  binding = max(ref, key=lambda f: -np.inf if np.isnan(bounds[f]) else bounds[f])
  ok = all(b < 0 for b in bounds.values())   # NaN compares False: not ok
  return _record(ok, value, _mae(floor_preds[binding], val_rating), binding)


def _likely_cause(name: str, rec: Mapping[str, Any], meta: Mapping[str, Any] | None,
                  failed_pretrain: list[str]) -> str:
  if name in PRETRAIN_STAGES:
    causes = ["the model stayed near its start (too few ratings per user or item for "
              "this model, learning-rate grid and epoch cap; see data_profile)"]
    if meta and meta.get("cap_reached"):
      causes.append(f"training stopped at the epoch cap ({meta.get('epochs_run')}) while "
                    "still improving: raise --epochs")
    if meta and meta.get("lr_at_edge"):
      causes.append(f"the best lr {meta.get('lr')} is at the {meta['lr_at_edge']} edge of "
                    f"the lrs tried {meta.get('lrs_tried')}: widen --lrs")
    return "; ".join(causes)
  if failed_pretrain and name not in FLOOR_METHODS:
    which = " and ".join(failed_pretrain)
    return f"{which} failed {'its' if len(failed_pretrain) == 1 else 'their'} own gate " \
           "(the models this method reads)"
  if rec["value"] > FAR_OFF * rec["floor"]:
    return ("predictions far from the ratings: an untrained representation (e.g. cold "
            "users' embeddings never updated) or a broken transfer")
  if rec["value"] < rec["floor"]:
    return (f"below the floor by less than {MARGIN_SE:g} standard errors of the paired "
            "difference on the validation ratings: not shown to beat it on this data")
  return "it trained but does not beat the floor on this data"


def failure_line(name: str, rec: Mapping[str, Any], meta: Mapping[str, Any] | None = None,
                 failed_pretrain: list[str] | None = None) -> str:
  """The one warning line of a failed record."""
  what = "held-out MSE" if name in PRETRAIN_STAGES else "validation MAE"
  clearly = "" if name in PRETRAIN_STAGES else " clearly"
  return (f"sanity: {name} {what} {rec['value']:.4f} is not{clearly} below the "
          f"{rec['floor_name']}'s {rec['floor']:.4f}; likely cause: "
          f"{_likely_cause(name, rec, meta, failed_pretrain or [])}")


def failures(sanity: Mapping[str, Mapping[str, Any]],
             pretrain_meta: Mapping[str, Mapping[str, Any]] | None = None,
             only: tuple[str, ...] | None = None) -> list[str]:
  """One warning line per failed record of ``sanity`` (pretraining stages first), or of
  the records named in ``only`` (the causes still read every pretraining record)."""
  pretrain_meta = pretrain_meta or {}
  failed_pretrain = [s for s in PRETRAIN_STAGES if s in sanity and not sanity[s]["ok"]]
  order = [s for s in PRETRAIN_STAGES if s in sanity] + [
      n for n in sanity if n not in PRETRAIN_STAGES]
  return [failure_line(n, sanity[n], pretrain_meta.get(n), failed_pretrain)
          for n in order if not sanity[n]["ok"] and (only is None or n in only)]


def sanity_failures(results: Mapping[str, Any]) -> dict[str, list[str]]:
  """The learned methods of one run that failed a sanity gate, with the reasons.

  Args:
    results: a run's results.json. Without a ``"sanity"`` record (runs from before
      the gates) nothing was checked and nothing fails.

  Returns:
    Method name as in ``results["methods"]`` -> reasons, e.g. ``"validation MAE not
    clearly below ItemMean"`` (its own gate, naming the binding floor) or
    ``"pretraining of the target model failed its gate"`` (a failed pretraining stage
    marks every learned method). Floors (:data:`FLOOR_METHODS`) are never listed;
    methods that passed are absent.
  """
  sanity = results.get("sanity") or {}
  stages = [f"pretraining of the {s.split('_')[1]} model failed its gate"
            for s in PRETRAIN_STAGES if _gate_failed(sanity.get(s))]
  out = {}
  for name in results.get("methods", {}):
    if name.split("(")[0] in FLOOR_METHODS:   # a registry name may carry options
      continue
    own = sanity.get(name)
    reasons = stages + ([f"validation MAE not clearly below "
                         f"{own.get('floor_name', 'its floor')}"]
                        if _gate_failed(own) else [])
    if reasons:
      out[name] = reasons
  return out


def _gate_failed(record: Any) -> bool:
  return isinstance(record, dict) and record.get("ok", True) is False


def enforce(lines: list[str], strict: bool) -> None:
  """Raises :class:`SanityError` on the first line under ``strict``."""
  if strict and lines:
    raise SanityError(lines[0] + " (--strict)")
