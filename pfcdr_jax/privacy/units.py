"""One privacy unit for every method: its neighbouring relation, its user-level epsilon,
and what it sends without noise.

Every private method in the project states its guarantee in its own unit: DP-EMCDR,
PFCDR-DP, PF2CDR and PPGenCDR per *user* (add or remove one user's released vector,
or one user's data in DP-SGD), PriCDR-S and PFCDR+(eps) per *rating*. A rating-level
guarantee says little about a user with 500 ratings, so the frontier reports each
method at the **user level**: a user's whole source profile may change.

Neighbouring relation at the user level: **add/remove** one user's whole source profile
(present vs absent / zeroed), the relation every mechanism here is calibrated for
(``mechanisms.sensitivity_of(C, "add_remove") = C``). Under "replace one user's profile"
the sensitivity doubles and the same noise gives roughly twice the epsilon.

* User-level methods: their (epsilon, delta) as calibrated.
* PriCDR-S (rating-level Gaussian, sigma fixed by its rating-level sensitivity
  ``r_max - r_min``): removing a user with n ratings moves their published row
  ``y_u = sum_j x_uj phi_j`` (|x_uj| <= (r_max - r_min) / 2, unit-norm rows phi_j) by at
  most ``min(n (r_max - r_min) / 2, sqrt(n) (r_max - r_min) / 2 * ||Phi||_2)``. A user
  who is added may have rated every source item, so n = the number of source items
  (PriCDR-S caps nothing per user); the user-level epsilon is the one the same sigma
  gives at that sensitivity and the same delta (``mechanisms.gaussian_epsilon``,
  analytic Gaussian). ``max_ratings`` (the largest profile actually published) gives
  the smaller, data-dependent number, reported beside it but not a DP bound.
* PFCDR+(eps): per-rating pure epsilon-DP on the rating *values*; which items and how
  many a user rated are released exactly (counts, sums of item biases). Adding or
  removing a user changes them with certainty, so there is **no finite user-level
  epsilon** (reported as inf). Group privacy over a user's k ratings would give
  ``k * eps`` for the values alone.
* Methods without a mechanism (PFCDR, PFCDR-Bilinear, PFCDR+, EMCDR, FedCDR without
  secure aggregation): user-level epsilon = inf.

Caveat shared by every per-user release (DP-EMCDR, PFCDR-DP, PF2CDR): the released
vector of user u is clipped and noised, but it was computed from a model trained on
every user (the item embeddings V are shared), so the guarantee covers the release of
u's vector given the model, not the model's training; PPGenCDR's DP-SGD covers its
generator's training.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from pfcdr_jax.baselines import registry
from pfcdr_jax.privacy import mechanisms


class Unit(NamedTuple):
  """A method's privacy guarantee.

  Attributes:
    native: "user", "rating" or "none" (no mechanism).
    epsilon, delta: the guarantee in the native unit (None without a mechanism).
    user_epsilon, user_delta: at the user level (inf when there is none).
    how: how the user-level numbers were obtained.
    unnoised: what the method sends without noise.
  """
  native: str
  epsilon: float | None
  delta: float | None
  user_epsilon: float
  user_delta: float | None
  how: str
  unnoised: str


SENDS = {
    "PFCDR": "the source prototype P_u of every bridge, validation and cold user",
    "PFCDR-Bilinear": "the source prototype P_u of every bridge, validation and cold user "
                      "(exactly PFCDR's transfer)",
    "PFCDR+": "P_u, and per user the offset o_u and crowd slope a_u at each of 4 kappas "
              "(bridge and validation users; test users one kappa): n_u = kappa / "
              "(o(0) / o(kappa) - 1) exactly, and the user's mean rating level. The "
              "frontier attacks every user's grid: for test users, who send one kappa, "
              "its n_ratings figure is an upper bound (its mean_rating one is not)",
    "PFCDR-Bilinear-DP": "PFCDR-DP's release: c + clip(P_u - c, C) + Gaussian noise, once "
                         "per bridge, validation and cold user; nothing else",
    "EMCDR": "the source user representation U_i",
    "FedCDR": "each client's item-row gradient uploads (readable by the server without "
              "secure aggregation; they give the client's embedding exactly) and the ids "
              "of the items they update (every rated source item over 100 rounds of 64; "
              "seen even under secure aggregation)",
}


def _pricdr_user_epsilon(settings: dict, n_items: int, rating_scale, phi_norm: float,
                         max_ratings: int | None = None) -> tuple[float, str]:
  lo, hi = rating_scale
  half = (hi - lo) / 2.0
  sens = lambda n: min(n * half, math.sqrt(n) * half * phi_norm)
  sigma = float(settings["sigma"])
  delta = registry.DP_DELTA
  eps = mechanisms.gaussian_epsilon(sigma, delta, sens(n_items))
  seen = ("" if max_ratings is None else
          f"; {mechanisms.gaussian_epsilon(sigma, delta, sens(max_ratings)):.3g} for the "
          f"largest profile published ({max_ratings} ratings), data-dependent, not a bound")
  return eps, (f"rating-level sigma {sigma:.3g} at the user-level sensitivity "
               f"{sens(n_items):.3g} of a user rating all {n_items} source items "
               f"(||Phi||_2 = {phi_norm:.3g}), analytic Gaussian at the same delta" + seen)


def _parse(name: str) -> tuple[str, dict]:
  """``registry.parse_name``, or (name, {}) for rows outside the registry (PFCDR)."""
  try:
    return registry.parse_name(name)
  except ValueError:
    return name, {}


def unit_of(name: str, settings: dict, *, n_items: int | None = None,
            max_ratings: int | None = None, rating_scale=(1.0, 5.0),
            phi_norm: float | None = None) -> Unit:
  """The :class:`Unit` of a frontier row.

  Args:
    name: the table name (``"DP-EMCDR(eps=1)"``).
    settings: the row's release settings (``transfers.Transfer.settings``).
    n_items: the number of source items (PriCDR-S: the largest possible profile).
    max_ratings: the largest source profile it publishes (PriCDR-S, shown only).
    rating_scale: the public rating scale.
    phi_norm: PriCDR-S's projection's spectral norm.
  """
  base, options = _parse(name)
  eps = settings.get("epsilon", options.get("eps"))
  eps = None if eps is None else float(eps)
  delta = settings.get("delta", registry.DP_DELTA)
  if base in ("PFCDR-DP", "PFCDR-Bilinear-DP") and settings.get("center_share"):
    share = float(settings["center_share"])
    return Unit("user", eps, delta, eps, delta,
                f"add/remove one user's clipped prototype (Gaussian, analytic) at "
                f"{1 - share:.0%} of (eps, delta), and its clipped share of the released "
                f"centre at {share:.0%} (basic composition)",
                "nothing beyond the noised vectors and the noised centre (clip norm "
                "chosen on validation)")
  if base in ("DP-EMCDR", "PFCDR-DP", "PF2CDR", "PFCDR-Bilinear-DP"):
    return Unit("user", eps, delta, eps, delta,
                "add/remove one user's clipped vector (Gaussian, analytic)",
                "nothing beyond the noised vector (clip norm chosen on validation)")
  if base == "PPGenCDR":
    return Unit("user", eps, delta, eps, delta, "DP-SGD over the generator's training, "
                "per-user clipping", "nothing beyond the DP generator")
  if base == "PriCDR-S" and settings.get("unit") == "user":
    return Unit("user", eps, delta, eps, delta, "add/remove one user's clipped row",
                "the published matrix of every source user (noised)")
  if base == "PriCDR-S":
    if n_items is None or phi_norm is None:
      raise ValueError("PriCDR-S's user-level epsilon needs n_items and phi_norm")
    ueps, how = _pricdr_user_epsilon(settings, n_items, rating_scale, phi_norm, max_ratings)
    return Unit("rating", eps, delta, ueps, delta, how,
                "the published matrix of every source user (noised)")
  if base == "PFCDR+" and eps is not None:
    return Unit("rating", eps, 0.0, math.inf, None,
                "per-rating Laplace on values; counts and item sets released exactly, "
                "so no finite user-level epsilon",
                "P_u, n_u, sum_u b_i and sum_u b_i^2 (and n_u from the kappa grid)")
  return Unit("none", None, None, math.inf, None, "no mechanism",
              SENDS.get(base, "its transferred vector"))
