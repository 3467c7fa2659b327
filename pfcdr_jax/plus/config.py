"""PFCDR+ settings: :class:`PlusConfig` (the grids chosen on validation and which parts
are on) and :data:`ABLATION`, the configs of ``experiments/ablate_plus.py``'s rows."""

from __future__ import annotations

import dataclasses

NEIGHBOURS = ("none", "uniform", "softmax", "both")
COMBINE = ("residual", "blend")
FIT_LOSSES = ("l2", "l1", "both")


@dataclasses.dataclass(frozen=True)
class PlusConfig:
  """PFCDR+ settings: the grids chosen on validation and which parts are on.

  Attributes:
    item_shrinkage: lambda grid of the item bias.
    bilinear: fit M (else the floor adds the raw offset o_u, BiasFloor's form).
    offset_shrinkage: kappa grid of the source offset, chosen with the ridge strength
      (0 = the plain mean offset; the raw-offset floor uses the first value). Bridge and
      validation users send one offset per kappa, the test users only the chosen one.
    use_offset: the source offset enters z_u (else no scalar is sent).
    use_prototype: the prototypes enter z_u (else the bilinear part is the offset only).
    item_side: x_j = [v_j, 1] (True) or [1] (False: no item interaction).
    ridge: ridge strengths tried, relative to the mean diagonal of X^T X.
    neighbours: "none", "uniform" (top-K mean), "softmax" (tau-weighted) or "both"
      (every K and every tau are candidates).
    k_grid: fractions of the trained target users for "uniform".
    taus: temperatures for "softmax".
    combine: "residual" or "blend" (see ``pfcdr_jax.plus.method``'s docstring).
    betas: neighbour weights tried.
    clip: clip predictions to the target training rating range.
    offset_epsilon: None (offsets sent as they are) or the (epsilon, offset_delta) of
      the Gaussian mechanism each offset goes through (:func:`noise_offsets`, clipped to
      [-offset_clip, offset_clip]; noise from ``noise_seed``). Per user, one release
      per kappa of the grid (test users: one). User-level: it protects the whole
      offset, so at epsilon < 1 the noise is ~20x the offsets' spread.
    rating_epsilon: None, or the epsilon of per-rating (pure, delta = 0) Laplace DP
      (:func:`rating_dp_release`): the source releases noised item sums (whence the
      item biases b~_i) and, per user, a noised rating sum and a noised sum of ratings
      times b~_i; the offset and the crowd scalar at every kappa are computed from
      that one release (post-processing: the kappa grid costs no budget). Protects
      the value of each single source rating (neighbouring data: one rating's value
      changed within ``rating_scale``), not which or how many items a user rated,
      not the user's level as a whole. Needs ``spread`` and ``offset_epsilon`` off.
    rating_scale: the public rating scale (lo, hi) of ``rating_epsilon``.
    select_steps: each step (raw offset, bilinear, neighbours) is kept only when it
      lowers the validation MAE of the step before (False: every enabled step is used,
      as the ablation rows do).
    fit_loss: "l2" (ridge), "l1" (the ridge fit at the chosen (kappa, strength) refit to
      least absolute deviations by IRLS, :func:`irls_l1`; MAE is the metric) or "both"
      (the L1 refit is a candidate next to the ridge fits, chosen on validation).
    irls_steps, irls_delta: IRLS iterations; residual floor of its weights 1/|res|.
    item_bias_feature: x_j = [v_j, b_j, 1]: the user scales the item's target bias.
    spread: one more scalar per user in z_u, its source rating spread
      (:func:`source_spread`, shrunk by the same kappa).
    offset_debias: the offset is the user's mean of ``r - mu_s - b_i`` (source item
      biases removed, still one scalar) instead of ``r - mu_s``.
    crowd: one more scalar per user in z_u, :func:`crowd_agreement` (shrunk by kappa).
    neighbour_folds: with ``select_steps``, the neighbour step is kept only if the
      (K or tau, beta) chosen on either half of the validation users also beats the
      step before on the other half (:func:`_helps_out_of_fold`); the ~84 candidates
      otherwise overfit a small validation set.
  """
  item_shrinkage: tuple[float, ...] = (0.0, 5.0, 25.0, 100.0)
  bilinear: bool = True
  offset_shrinkage: tuple[float, ...] = (0.0, 5.0, 20.0, 50.0)
  use_offset: bool = True
  use_prototype: bool = True
  item_side: bool = True
  ridge: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
  neighbours: str = "both"
  k_grid: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
  taus: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
  combine: str = "residual"
  betas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
  clip: bool = True
  offset_epsilon: float | None = None
  offset_delta: float = 1e-5
  offset_clip: float = 1.0
  rating_epsilon: float | None = None
  rating_scale: tuple[float, float] = (1.0, 5.0)
  noise_seed: int = 0
  select_steps: bool = True
  fit_loss: str = "both"
  irls_steps: int = 10
  irls_delta: float = 0.01
  item_bias_feature: bool = True
  spread: bool = False
  offset_debias: bool = True
  crowd: bool = True
  neighbour_folds: bool = True

  def __post_init__(self):
    if self.fit_loss not in FIT_LOSSES:
      raise ValueError(f"fit_loss must be one of {FIT_LOSSES}, got {self.fit_loss!r}")
    if self.neighbours not in NEIGHBOURS:
      raise ValueError(f"neighbours must be one of {NEIGHBOURS}, got {self.neighbours!r}")
    if self.combine not in COMBINE:
      raise ValueError(f"combine must be one of {COMBINE}, got {self.combine!r}")
    if self.bilinear and not (self.use_offset or self.use_prototype):
      raise ValueError("bilinear needs user features: use_offset or use_prototype")
    if self.rating_epsilon is not None:
      if not self.rating_epsilon > 0:
        raise ValueError(f"rating_epsilon must be > 0, got {self.rating_epsilon}")
      on = (["spread"] if self.spread else []) + (
          ["offset_epsilon"] if self.offset_epsilon is not None else [])
      if on:
        raise ValueError(f"rating_epsilon has no mechanism for {on}; turn them off")
      lo, hi = self.rating_scale
      if not lo < hi:
        raise ValueError(f"rating_scale must be (lo, hi) with lo < hi, got {self.rating_scale}")


# --- the ablation (experiments/ablate_plus.py): (step, inversion ratings, config) -------

_NO_NB = dict(neighbours="none", select_steps=False)
_OLD = dict(offset_debias=False, crowd=False, item_bias_feature=False, fit_loss="l2")
ABLATION: tuple[tuple[str, tuple[float, ...], PlusConfig], ...] = (
    ("floor mu + b_j", (5.0,), PlusConfig(bilinear=False, use_offset=False, **_NO_NB)),
    ("+ raw source offset (BiasFloor form)", (5.0,),
     PlusConfig(bilinear=False, **{**_OLD, **_NO_NB})),
    ("first-session PFCDR+ default (1 scalar, ridge)", (5.0,), PlusConfig(**_OLD)),
    ("bilinear ridge, raw offset, no neighbours", (5.0,), PlusConfig(**_OLD, **_NO_NB)),
    ("+ debiased offset", (5.0,),
     PlusConfig(**{**_OLD, "offset_debias": True}, **_NO_NB)),
    ("+ crowd scalar and x_j = [v_j, b_j, 1]", (5.0,),
     PlusConfig(fit_loss="l2", **_NO_NB)),
    ("+ L1 refit (IRLS) if validation says so", (5.0,), PlusConfig(**_NO_NB)),
    ("PFCDR+ default (+ neighbours if validation says so)", (5.0,), PlusConfig()),
    ("default without prototypes (2 scalars only)", (5.0,),
     PlusConfig(use_prototype=False, **_NO_NB)),
    ("default without user scalars (PFCDR-Bilinear: prototypes only)", (5.0,),
     PlusConfig(use_offset=False, crowd=False)),
)
