"""Name -> baseline: one `fit_predict(name, ctx)` for every extra method of Table 1.

`pipeline.run_pfcdr` calls :func:`fit_predict` for each name in
`PFCDRConfig.extra_baselines` with the run's :class:`BaselineContext` and stores the
returned choices under ``results["selected"]["baselines"][name]``.

Names. ``"<Method>"`` or ``"<Method>(key=value,...)"``: the options override fields of
the method's config dataclass (``lr``, ``epochs``, ...), and a field fixed by an option
is removed from the selection grid. ``eps`` is the privacy budget of the DP methods
(``"DP-EMCDR(eps=1)"``, delta = 1e-5, analytic Gaussian mechanism; plain ``"DP-EMCDR"``
clips but adds no noise; ``"PriCDR-S"`` keeps its module's default epsilon = 0.5,
rating-level, classic mechanism); :data:`NAMES` lists the default set,
:func:`quick_names` the same methods with few epochs and one grid point (for CI).

Selection protocol (never on test). Each grid point is trained once; the model predicts
the validation pairs (``ctx.data.target_val``: pseudo-cold overlap users whose target
ratings were removed from training, so they are cold exactly like test users) and the
test pairs in the same call, the point with the lowest validation MAE is kept and its
test predictions returned. Test ratings are never read here (only test (user, item)
pairs), so corrupting them leaves every prediction unchanged (tested). Grids are small
on purpose: a Table-1 cell must stay at a few minutes on 2 CPU cores.

Which embeddings. Every scorer predicts ``user_repr(params, u) . V[j]``, i.e. it is
linear in the item-side input (and so in PFCDR's inversion weights ``b``); the
embedding-based baselines therefore take the *user representation*
``scorer.user_repr`` (MF: ``U``; GMF: ``h * U``; YouTube-DNN: ``tower(U)``) and the item
matrix ``scorer.item_matrix`` of the shared pretrained models, and predict
``u_t_hat . V_t[j]``, exact for all three scorers. For MF this is the raw embedding;
for GMF it is a fixed per-dimension rescaling of it (a linear map of the raw
embedding, so a linear bridge has the same function class); for YouTube-DNN it is the
tower output, not the raw embedding that the PFCDR paper (Sec. 5.3) and our in-pipeline
EMCDR map. We map the tower output because SSCDR pulls mapped users and items into one
metric space and PTUPCDR / DP-EMCDR / PriCDR-S predict with a dot product against the
target items: both need the space in which ``u . v`` is the rating. CMF and LightGCN
train their own factors (base model not used); SourceUserMean is a floor.
"""

from __future__ import annotations

import re
import zlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.baselines import cmf
from pfcdr_jax.baselines import dp_emcdr
from pfcdr_jax.baselines import lightgcn
from pfcdr_jax.baselines import pricdr
from pfcdr_jax.baselines import ptupcdr
from pfcdr_jax.baselines import source_user_mean
from pfcdr_jax.baselines import sscdr
from pfcdr_jax.baselines.context import BaselineContext

DP_EPSILONS = (0.5, 1.0, 5.0, 10.0)
DP_DELTA = 1e-5

NAMES = ("LightGCN", "CMF", "SSCDR", "PTUPCDR",
         *(f"DP-EMCDR(eps={e:g})" for e in DP_EPSILONS), "PriCDR-S", "SourceUserMean")

# Selection grids (first point = the default used when a grid collapses). Learning
# rates come from the paper's grid {0.001, 0.005, 0.01, 0.02, 0.1}.
# Part of every baseline's stage-cache key (pipeline.run_pfcdr): bump it when a change
# to a baseline's code changes its predictions, so cached predictions are not reused.
CACHE_VERSION = 1

GRIDS: dict[str, tuple[dict[str, Any], ...]] = {
    "LightGCN": ({"lr": 0.01}, {"lr": 0.005}),
    "CMF": ({"lr": 0.01, "alpha": 0.5}, {"lr": 0.005, "alpha": 0.5},
            {"lr": 0.001, "alpha": 0.5}, {"lr": 0.005, "alpha": 0.2}),
    "SSCDR": ({"lr": 0.005}, {"lr": 0.001}, {"lr": 0.02}),
    "PTUPCDR": ({"lr": 0.005}, {"lr": 0.001}, {"lr": 0.01}, {"lr": 0.02}),
    # Clip norm C: the embeddings' norms are data-dependent, so C is chosen on validation
    # (hyper-parameter search is not charged to the privacy budget, as is common).
    "DP-EMCDR": ({"clip_norm": 1.0}, {"clip_norm": 0.5}, {"clip_norm": 2.0},
                 {"clip_norm": 4.0}),
    "PriCDR-S": ({"lr": 0.01}, {"lr": 0.001}),
    "SourceUserMean": ({"shrinkage": 0.0}, {"shrinkage": 5.0}, {"shrinkage": 20.0}),
}

# Fixed settings that differ from the modules' defaults (cost on 2 CPU cores).
DEFAULTS: dict[str, dict[str, Any]] = {
    "LightGCN": {"epochs": 20, "batch_size": 4096},
    "CMF": {"epochs": 20, "batch_size": 4096},
    "SSCDR": {"epochs": 100},
    "PTUPCDR": {"epochs": 10, "batch_size": 512},
    # Analytic Gaussian mechanism: valid for every epsilon, tighter than the classic one.
    "DP-EMCDR": {"mechanism": "analytic", "delta": DP_DELTA},
    "PriCDR-S": {"epochs": 20, "batch_size": 512},
    "SourceUserMean": {},
}

# What --quick runs: the same methods, few epochs, one grid point each.
QUICK_OPTIONS: dict[str, str] = {
    "LightGCN": "epochs=2,lr=0.01",
    "CMF": "epochs=2,lr=0.01,alpha=0.5",
    "SSCDR": "epochs=10,lr=0.005",
    "PTUPCDR": "epochs=2,lr=0.005",
    "DP-EMCDR": "clip_norm=1",
    "PriCDR-S": "epochs=3,lr=0.01",
    "SourceUserMean": "shrinkage=0",
}

_NAME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)(?:\((.*)\))?$")


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
  if base not in _RUNNERS:
    raise ValueError(f"unknown baseline {base!r}; choose from {sorted(_RUNNERS)}")
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
  """`names` with the cheap options of :data:`QUICK_OPTIONS` appended."""
  out = []
  for name in names:
    base, options = parse_name(name)
    quick = dict(parse_name(f"{base}({QUICK_OPTIONS[base]})")[1])
    quick.update(options)
    out.append(f"{base}(" + ",".join(f"{k}={v:g}" if isinstance(v, (int, float)) else
                                     f"{k}={v}" for k, v in quick.items()) + ")")
  return tuple(out)


def _number(text: str) -> float | int | str:
  try:
    value = float(text)
  except ValueError:
    return text
  return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def _key_for(ctx: BaselineContext, base: str) -> jax.Array:
  # crc32, not hash(): Python's str hash is salted per process.
  return jax.random.fold_in(ctx.key, zlib.crc32(base.encode()) & 0x7FFFFFFF)


def _tuples(d):
  return (d.user, d.item, d.rating)


def _reprs(ctx: BaselineContext) -> dict[str, np.ndarray]:
  """User representations and item matrices of both pretrained scorers."""
  sc, data = ctx.scorer, ctx.data
  return {
      "src_user_emb": np.asarray(sc.user_repr(ctx.params_s, jnp.arange(data.source.n_users))),
      "src_item_emb": np.asarray(sc.item_matrix(ctx.params_s)),
      "tgt_user_emb": np.asarray(sc.user_repr(ctx.params_t,
                                              jnp.arange(data.target_train.n_users))),
      "tgt_item_emb": np.asarray(sc.item_matrix(ctx.params_t)),
  }


def _emb_dim(ctx: BaselineContext) -> int:
  return int(np.asarray(ctx.scorer.item_matrix(ctx.params_t)).shape[1])


# One runner per method: (ctx, merged option dict, pairs (user, item), key) -> pred.
def _run_lightgcn(ctx, opts, pairs, key):
  d = ctx.data.target_train
  cfg = lightgcn.LightGCNConfig(dim=_emb_dim(ctx), **opts)
  return lightgcn.fit_predict(_tuples(d), pairs, n_users_tgt=d.n_users, n_items_tgt=d.n_items,
                              cfg=cfg, key=key)


def _run_cmf(ctx, opts, pairs, key):
  s, t = ctx.data.source, ctx.data.target_train
  cfg = cmf.CMFConfig(dim=_emb_dim(ctx), **opts)
  return cmf.fit_predict(_tuples(s), _tuples(t), pairs, n_users_src=s.n_users,
                         n_items_src=s.n_items, n_users_tgt=t.n_users, n_items_tgt=t.n_items,
                         n_overlap=ctx.data.n_overlap, cfg=cfg, key=key)


def _run_sscdr(ctx, opts, pairs, key):
  cfg = sscdr.SSCDRConfig(**opts)
  return sscdr.fit_predict(_tuples(ctx.data.source), pairs, train_users=ctx.data.train_users,
                           cfg=cfg, key=key, **_reprs(ctx))


def _run_ptupcdr(ctx, opts, pairs, key):
  cfg = ptupcdr.PTUPCDRConfig(**opts)
  r = _reprs(ctx)
  return ptupcdr.fit_predict(_tuples(ctx.data.source), _tuples(ctx.data.target_train), pairs,
                             train_users=ctx.data.train_users, src_user_emb=r["src_user_emb"],
                             src_item_emb=r["src_item_emb"], tgt_item_emb=r["tgt_item_emb"],
                             cfg=cfg, key=key)


def _run_dp_emcdr(ctx, opts, pairs, key):
  opts = dict(opts)
  opts["epsilon"] = float(opts.pop("eps")) if "eps" in opts else None
  cfg = dp_emcdr.DPEMCDRConfig(**opts)
  r = _reprs(ctx)
  return dp_emcdr.fit_predict(pairs, train_users=ctx.data.train_users,
                              src_user_emb=r["src_user_emb"], tgt_user_emb=r["tgt_user_emb"],
                              tgt_item_emb=r["tgt_item_emb"], cfg=cfg, key=key)


def _run_pricdr(ctx, opts, pairs, key):
  opts = dict(opts)
  if "eps" in opts:
    opts["epsilon"] = float(opts.pop("eps"))
  cfg = pricdr.PriCDRConfig(**opts)
  s, r = ctx.data.source, _reprs(ctx)
  return pricdr.fit_predict(_tuples(s), _tuples(ctx.data.target_train), pairs,
                            n_users_src=s.n_users, n_items_src=s.n_items,
                            train_users=ctx.data.train_users, tgt_user_emb=r["tgt_user_emb"],
                            tgt_item_emb=r["tgt_item_emb"], cfg=cfg, key=key)


def _run_source_user_mean(ctx, opts, pairs, key):
  cfg = source_user_mean.SourceUserMeanConfig(**opts)
  return source_user_mean.fit_predict(_tuples(ctx.data.source), _tuples(ctx.data.target_train),
                                      pairs, n_users_src=ctx.data.source.n_users, cfg=cfg,
                                      key=key)


_RUNNERS: dict[str, Callable] = {
    "LightGCN": _run_lightgcn, "CMF": _run_cmf, "SSCDR": _run_sscdr, "PTUPCDR": _run_ptupcdr,
    "DP-EMCDR": _run_dp_emcdr, "PriCDR-S": _run_pricdr, "SourceUserMean": _run_source_user_mean,
}


def selection_grid(name: str) -> tuple[dict[str, Any], ...]:
  """The settings tried for `name` (defaults + options, grid over the free fields)."""
  base, options = parse_name(name)
  fixed = {**DEFAULTS[base], **options}
  points = []
  for point in GRIDS[base]:
    merged = {**fixed, **{k: v for k, v in point.items() if k not in options}}
    if merged not in points:
      points.append(merged)
  return tuple(points)


def fit_predict(name: str, ctx: BaselineContext) -> tuple[np.ndarray, dict[str, Any]]:
  """Runs baseline `name`, choosing its settings on the validation users.

  Args:
    name: one of :data:`NAMES`, optionally with ``(key=value,...)`` options.
    ctx: the run's split and shared pretrained base models.

  Returns:
    ``(pred float32[T], chosen)``: predictions for ``ctx.data.target_test`` in its
    rating order, and the chosen settings with the validation MAE of every grid point.

  Raises:
    ValueError: unknown name, or a grid of several points without validation ratings.
  """
  base, _ = parse_name(name)
  grid = selection_grid(name)
  val, test = ctx.data.target_val, ctx.data.target_test
  if len(grid) > 1 and val.rating.size == 0:
    raise ValueError(f"{name}: choosing among {len(grid)} settings needs validation users "
                     "with target ratings (raise val_fraction or fix the options)")
  n_val = val.rating.size
  pairs = (np.concatenate([val.user, test.user]).astype(np.int32),
           np.concatenate([val.item, test.item]).astype(np.int32))
  key = _key_for(ctx, base)
  runner = _RUNNERS[base]
  best = None
  tried = []
  for point in grid:
    pred = np.asarray(runner(ctx, point, pairs, key), np.float32)
    if pred.shape != pairs[0].shape:
      raise ValueError(f"{name}: expected {pairs[0].shape} predictions, got {pred.shape}")
    val_mae = float(np.mean(np.abs(pred[:n_val] - val.rating))) if n_val else float("nan")
    tried.append({**point, "val_mae": val_mae})
    if best is None or val_mae < best[0]:
      best = (val_mae, point, pred[n_val:])
  val_mae, point, test_pred = best
  if not np.all(np.isfinite(test_pred)):
    raise FloatingPointError(f"{name}: non-finite test predictions with settings {point}")
  chosen = {**{k: v for k, v in point.items()}, "val_mae": val_mae, "grid": tried}
  return test_pred.astype(np.float32), chosen
