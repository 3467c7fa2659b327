"""PFCDR+ (ours): the bias floor, a prototype bilinear bridge and neighbours.

Modules:
  config      PlusConfig (grids and switches) and the ablation's configs (ABLATION)
  inputs      PlusInputs of a split, built from PFCDR's run; the Pairs to predict
  features    item biases, the per-user source scalars, the feature rows z_u and x_j
  release     what the source sends: offsets and crowd scalars, plain or under DP
  solvers     the bilinear M: normal equations, ridge, the L1 (IRLS) refit
  neighbours  the neighbour means w_bar_u (softmax over all, or top-K)
  method      fit_predict_plus: the steps, each chosen on validation
"""
from pfcdr_jax.plus.config import ABLATION
from pfcdr_jax.plus.config import COMBINE
from pfcdr_jax.plus.config import FIT_LOSSES
from pfcdr_jax.plus.config import NEIGHBOURS
from pfcdr_jax.plus.config import PlusConfig
from pfcdr_jax.plus.features import crowd_agreement
from pfcdr_jax.plus.features import item_bias
from pfcdr_jax.plus.features import item_features
from pfcdr_jax.plus.features import SOURCE_ITEM_SHRINKAGE
from pfcdr_jax.plus.features import source_offsets
from pfcdr_jax.plus.features import source_spread
from pfcdr_jax.plus.features import user_features
from pfcdr_jax.plus.inputs import Pairs
from pfcdr_jax.plus.inputs import plus_inputs
from pfcdr_jax.plus.inputs import PlusInputs
from pfcdr_jax.plus.method import fit_predict_plus
from pfcdr_jax.plus.method import PlusFit
from pfcdr_jax.plus.neighbours import neighbour_means
from pfcdr_jax.plus.neighbours import softmax_neighbour_mean
from pfcdr_jax.plus.neighbours import uniform_neighbour_mean
from pfcdr_jax.plus.release import dp_crowd
from pfcdr_jax.plus.release import dp_offsets
from pfcdr_jax.plus.release import gaussian_sigma
from pfcdr_jax.plus.release import noise_offsets
from pfcdr_jax.plus.release import RATING_DP_BIAS_CLIP
from pfcdr_jax.plus.release import rating_dp_release
from pfcdr_jax.plus.release import RATING_DP_SHARES
from pfcdr_jax.plus.release import RatingRelease
from pfcdr_jax.plus.release import sent_crowd
from pfcdr_jax.plus.release import sent_offsets
from pfcdr_jax.plus.solvers import bilinear_predict
from pfcdr_jax.plus.solvers import irls_l1
from pfcdr_jax.plus.solvers import normal_equations
from pfcdr_jax.plus.solvers import ridge_solve

__all__ = [
    "ABLATION", "COMBINE", "FIT_LOSSES", "NEIGHBOURS", "PlusConfig",
    "crowd_agreement", "item_bias", "item_features", "SOURCE_ITEM_SHRINKAGE",
    "source_offsets", "source_spread", "user_features",
    "Pairs", "plus_inputs", "PlusInputs",
    "fit_predict_plus", "PlusFit",
    "neighbour_means", "softmax_neighbour_mean", "uniform_neighbour_mean",
    "dp_crowd", "dp_offsets", "gaussian_sigma", "noise_offsets", "RATING_DP_BIAS_CLIP",
    "RATING_DP_SHARES", "rating_dp_release", "RatingRelease", "sent_crowd", "sent_offsets",
    "bilinear_predict", "irls_l1", "normal_equations", "ridge_solve",
]
