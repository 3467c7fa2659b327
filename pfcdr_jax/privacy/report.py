"""The privacy table as markdown, and utility against leakage as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pfcdr_jax.infra import figures
from pfcdr_jax.infra import markdown as markdown_lib

# (column header, path into a row's results); "-" where the attack does not apply.
COLUMNS = (
    ("cos_c A", ("embedding", "A_direct", "cos_centered")),
    ("R² A", ("embedding", "A_direct", "r2")),
    ("cos_c C", ("embedding", "C_decoder", "cos_centered")),
    ("R² C", ("embedding", "C_decoder", "r2")),
    ("hi/lo AUC B", ("preference", "B", "high_low")),
    ("hi/lo AUC C", ("preference", "C", "high_low")),
    ("rated AUC B", ("preference", "B", "rated_unrated")),
    ("sign agr. B", ("preference", "B", "sign_agreement")),
    ("rated AUC C", ("preference", "C", "rated_unrated")),
    ("link@1 A", ("linkage", "A_direct", "top1")),
    ("link@1 C", ("linkage", "C_decoder", "top1")),
    ("link@10 C", ("linkage", "C_decoder", "top10")),
    ("gender AUC", ("attributes", "gender", "auc")),
    ("age acc", ("attributes", "age", "accuracy")),
    ("occ. acc", ("attributes", "occupation", "accuracy")),
)


def _get(row: dict, path: tuple[str, ...]):
  for p in path:
    if not isinstance(row, dict) or p not in row:
      return None
    row = row[p]
  return row


def _fmt(v, digits: int = 3) -> str:
  if v is None or (isinstance(v, float) and not np.isfinite(v)):
    return "-"
  return f"{v:.{digits}f}"


def markdown(out: dict) -> str:
  """The table of every row (controls first), with what the columns mean."""
  u = out["users"]
  lines = [f"# Privacy: what each method's transferred vectors reveal ({out['task']}, "
           f"beta={out['beta']:g}, seed {out['seed']}, {out['base_model']})", "",
           f"Attacked: {u['attacked']} held-out cold-start users; attacker C's auxiliary "
           f"users: {u['aux']} bridge users; linkage pool: all {u['linkage_pool']} source "
           "users (chance link@1 = "
           f"{1 / u['linkage_pool']:.4f}, link@10 = {10 / u['linkage_pool']:.4f}).", ""]
  lines += markdown_lib.table(["method", "dim", "cold MAE"] + [c for c, _ in COLUMNS], (
      [row["method"], row["dim"], _fmt(row["mae"], 4)] + [_fmt(_get(row, p)) for _, p in COLUMNS]
      for row in out["rows"]))
  majority = [(_get(r, ("attributes", a, "majority"))) for r in out["rows"][:1]
              for a in ("age", "occupation")]
  lines += ["", "Columns: A = the transferred vector read directly as ``U_i``; B = with "
            "the source item matrix V (item scores ``V x``; PriCDR-S: ``Phi^T`` back-"
            "projection); C = a decoder / classifier fitted on the auxiliary users' true "
            "data. cos_c: median cosine to the true ``U_i`` after subtracting the mean "
            "user; R²: 1 - SSE/SST around the mean user. hi/lo AUC: items the user rated "
            ">= 4 ranked above the user's other rated items; rated AUC: rated above "
            "unrated items (per user, averaged); sign agr.: share of items with sign(V x) = sign(V U_i). link@k: the true user among the top k "
            "of all source users by centred cosine. Attributes: logistic regression on "
            "the transferred vector (gender: AUC; age group and occupation: accuracy"
            + (f"; majority-class accuracy {_fmt(majority[0])} / {_fmt(majority[1])}"
               if None not in majority else "") + "). Controls carry no user "
            "information: they measure chance."]
  return "\n".join(lines) + "\n"


def _family(name: str) -> tuple[str, str]:
  """``"DP-EMCDR(eps=1)"`` -> ``("DP-EMCDR", "ε=1")``; plain names -> (name, "")."""
  base, _, rest = name.partition("(")
  return base, ("ε=" + rest.rstrip(")").split("=", 1)[1]) if rest else ""


def plot(out: dict, path: str | Path) -> None:
  """Cold-start MAE against two leakage scores (attacker C), one point per method / eps.

  Methods with a budget are one line per family, each point labelled by its epsilon;
  dotted vertical lines are the controls (chance); rows without a MAE that are not
  controls (a part of a method's transfer, e.g. PFCDR+'s scalars alone) are in the
  table only.
  """
  plt = figures.pyplot()
  panels = (("R² of U_i from a decoder (attacker C)", ("embedding", "C_decoder", "r2")),
            ("liked-vs-disliked AUC (attacker C)", ("preference", "C", "high_low")))
  fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8))
  for ax, (label, p) in zip(axes, panels):
    families: dict[str, list] = {}
    for row in out["rows"]:
      x = _get(row, p)
      if x is None:
        continue
      if row["method"].startswith("control:"):
        ax.axvline(x, color="grey", ls=":", lw=1)
        continue
      if row["mae"] is None:   # a part of a method's transfer (no MAE of its own)
        continue
      base, tag = _family(row["method"])
      families.setdefault(base, []).append((x, row["mae"], tag))
    for base, pts in families.items():
      xs, ys, tags = zip(*pts)
      line, = ax.plot(xs, ys, "o-" if len(pts) > 1 else "o", ms=5, label=base)
      for x, y, tag in pts:
        if tag:
          ax.annotate(tag, (x, y), fontsize=7, color=line.get_color(), xytext=(3, -9),
                      textcoords="offset points")
    ax.set_xlabel(label + "  (dotted: controls = chance)")
    ax.set_ylabel("cold-start MAE (lower is better)")
    ax.legend(fontsize=8)
  figures.save_png(fig, path, f"Utility vs leakage, {out['task']} beta={out['beta']:g} "
                   f"seed {out['seed']}")
