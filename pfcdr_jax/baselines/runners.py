"""The registry's runners: one per method, ``(ctx, options, pairs, key) -> predictions``.

Each runner turns the run's :class:`BaselineContext` and one merged option dict into
its method's config and ``fit_predict`` call and returns float predictions of
``pairs`` = ``(user int[P], item int[P])``; ``registry.ENTRIES`` names them.

Which embeddings. Every scorer predicts ``user_repr(params, u) . V[j]``, i.e. it is
linear in the item-side input (and so in PFCDR's inversion weights ``b``); the
embedding-based baselines therefore take the *user representation*
``scorer.user_repr`` (MF: ``U``; GMF: ``h * U``; YouTube-DNN: ``tower(U)``) and the item
matrix ``scorer.item_matrix`` of the shared pretrained models, and predict
``u_t_hat . V_t[j]``, exact for all three scorers. For MF this is the raw embedding;
for GMF it is a fixed per-dimension rescaling of it (a linear map of the raw
embedding, so a linear bridge has the same function class); for YouTube-DNN it is the
tower output, not the raw embedding that the PFCDR paper's Sec. 5.3 text describes
(EMCDR maps the tower output on YouTube-DNN too, as the public code does; the raw-table
variant is ``"EMCDR(space=raw)"``, see ``baselines/emcdr.py``). We map the tower output because SSCDR pulls mapped users and items into one
metric space and PTUPCDR / DP-EMCDR / PriCDR-S predict with a dot product against the
target items: both need the space in which ``u . v`` is the rating. CMF and LightGCN
train their own factors (base model not used); SourceUserMean is a floor.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref

import jax.numpy as jnp
import numpy as np

from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.plus.config import PlusConfig
from pfcdr_jax.plus.inputs import Pairs
from pfcdr_jax.plus.inputs import plus_inputs
from pfcdr_jax.plus.method import fit_predict_plus
from pfcdr_jax.infra import phase_timer
from pfcdr_jax.baselines import bias_floor
from pfcdr_jax.baselines import cmf
from pfcdr_jax.baselines import dp_emcdr
from pfcdr_jax.baselines import emcdr
from pfcdr_jax.baselines import fedcdr
from pfcdr_jax.baselines import floors
from pfcdr_jax.baselines import lightgcn
from pfcdr_jax.baselines import pf2cdr
from pfcdr_jax.baselines import ppgencdr
from pfcdr_jax.baselines.ppgencdr_config import PPGenCDRConfig
from pfcdr_jax.baselines import pricdr
from pfcdr_jax.baselines import ptupcdr
from pfcdr_jax.baselines import source_user_mean
from pfcdr_jax.baselines import sscdr
from pfcdr_jax.baselines.context import BaselineContext
from pfcdr_jax.privacy import dp_prototypes


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
  return int(np.asarray(ctx.params_t["item"]).shape[1])   # the embedding width, no offsets


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


def _run_fedcdr(ctx, opts, pairs, key):
  """FedCDR: trains its own federated factors (base model not used) of rank d.

  With ``eps`` the per-person clip defaults to C = 1 (Adam is scale-invariant, so once
  every upload is clipped the result hardly depends on C).
  """
  opts = dict(opts)
  if "eps" in opts:
    opts["epsilon"] = float(opts.pop("eps"))
    opts.setdefault("clip_norm", 1.0)
  s, t = ctx.data.source, ctx.data.target_train
  cfg = fedcdr.FedCDRConfig(dim=_emb_dim(ctx), **opts)
  return fedcdr.fit_predict(_tuples(s), _tuples(t), pairs, n_users_src=s.n_users,
                            n_items_src=s.n_items, n_users_tgt=t.n_users, n_items_tgt=t.n_items,
                            train_users=ctx.data.train_users, cfg=cfg, key=key)


def _run_pf2cdr(ctx, opts, pairs, key):
  opts = dict(opts)
  if "eps" in opts:
    opts["epsilon"] = float(opts.pop("eps"))
  r = _reprs(ctx)
  return pf2cdr.fit_predict(_tuples(ctx.data.target_train), pairs,
                            train_users=ctx.data.train_users, src_user_emb=r["src_user_emb"],
                            tgt_user_emb=r["tgt_user_emb"], tgt_item_emb=r["tgt_item_emb"],
                            cfg=pf2cdr.PF2CDRConfig(**opts), key=key)


def _run_ppgencdr(ctx, opts, pairs, key):
  """PPGenCDR: its own DP generator on the raw source ratings (the source MF is not
  used), codes of size d; the target side uses the run's pretrained target model."""
  opts = dict(opts)
  if "eps" in opts:
    opts["epsilon"] = float(opts.pop("eps"))
  s, r = ctx.data.source, _reprs(ctx)
  return ppgencdr.fit_predict(_tuples(s), _tuples(ctx.data.target_train), pairs,
                              n_users_src=s.n_users, n_items_src=s.n_items,
                              train_users=ctx.data.train_users, tgt_user_emb=r["tgt_user_emb"],
                              tgt_item_emb=r["tgt_item_emb"],
                              cfg=PPGenCDRConfig(gen_dim=_emb_dim(ctx), **opts), key=key)


def _run_source_user_mean(ctx, opts, pairs, key):
  cfg = source_user_mean.SourceUserMeanConfig(**opts)
  return source_user_mean.fit_predict(_tuples(ctx.data.source), _tuples(ctx.data.target_train),
                                      pairs, n_users_src=ctx.data.source.n_users, cfg=cfg,
                                      key=key)


# BiasFloor's sums and counts per run (context) and user shrinkage: its grid over the
# item shrinkage reads them all from one pass over the ratings.
_BIAS_STATS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _run_bias_floor(ctx, opts, pairs, key):
  cfg = bias_floor.BiasFloorConfig(**opts)
  per_ctx = _BIAS_STATS.setdefault(ctx, {})
  if cfg.user_shrinkage not in per_ctx:
    per_ctx[cfg.user_shrinkage] = bias_floor.fit(
        _tuples(ctx.data.source), _tuples(ctx.data.target_train),
        n_users_src=ctx.data.source.n_users, n_items_tgt=ctx.data.target_train.n_items,
        user_shrinkage=cfg.user_shrinkage)
  return bias_floor.fit_predict(_tuples(ctx.data.source), _tuples(ctx.data.target_train), pairs,
                                n_users_src=ctx.data.source.n_users,
                                n_items_tgt=ctx.data.target_train.n_items, cfg=cfg, key=key,
                                stats=per_ctx[cfg.user_shrinkage])


def _run_pfcdr_dp(ctx, opts, pairs, key):
  opts = dict(opts)
  opts["epsilon"] = float(opts.pop("eps")) if "eps" in opts else None
  return dp_prototypes.fit_predict_pairs(
      ctx.scorer, ctx.params_s, ctx.params_t, ctx.data, pairs,
      cfg=dp_prototypes.DPPrototypeConfig(**opts), inversion=ctx.inversion,
      bridge=ctx.bridge, topk=ctx.topk, key=key, seed=ctx.seed)


def _run_pfcdr_plus(ctx, opts, pairs, key):
  """PFCDR+ (``pfcdr_jax.plus``): its own settings are chosen inside, on validation.

  The prototypes are PFCDR's (the run's stage keys, ``StageKeys.from_seed``, and
  ``ctx.inversion``), plus, with option ``rs`` ("1/5"), source prototypes at those
  other target ratings; the neighbours match through PFCDR's bridge (``ctx.bridge``).
  ``PFCDR+(eps=E)`` is its per-rating Laplace-DP variant (``rating_epsilon=E``;
  ``scale=lo/hi``, default 1/5, the public rating scale).
  """
  del key
  opts = dict(opts)
  r_main = float(ctx.inversion.target_rating)
  opts.setdefault("noise_seed", ctx.seed)   # used only with offset_epsilon / eps
  if "eps" in opts:
    opts["rating_epsilon"] = float(opts.pop("eps"))
  if "scale" in opts:
    text = str(opts.pop("scale"))
    try:
      lo, hi = (float(v) for v in text.split("/"))
    except ValueError:
      raise ValueError(f"PFCDR+(scale={text}): expected lo/hi, e.g. scale=1/5") from None
    opts["rating_scale"] = (lo, hi)
  extra = [float(r) for r in str(opts.pop("rs", r_main)).split("/")]
  rs = tuple(r for r in extra if r != r_main) + (r_main,)
  inp = plus_inputs(ctx.scorer, ctx.params_s, ctx.params_t, ctx.data,
                    method_lib.StageKeys.from_seed(ctx.seed), ctx.bridge,
                    ctx.inversion, rs)
  return _fit_plus(ctx, inp, pairs, opts, "PFCDR+")


def _fit_plus(ctx, inp, pairs, opts: dict, shown: str) -> np.ndarray:
  val = ctx.data.target_val
  fit = fit_predict_plus(inp, (val.user, val.item, val.rating),
                         Pairs(*pairs), PlusConfig(**opts))
  logging.getLogger(__name__).info("%s: chosen on validation %s; validation MAE by "
                                   "step %s", shown, fit.chosen, fit.val_mae)
  return fit.pred


def _run_pfcdr_bilinear_dp(ctx, opts, pairs, key):
  """PFCDR-Bilinear on prototypes released through PFCDR-DP's Gaussian mechanism.

  Every source prototype that leaves the source (bridge and cold users, at PFCDR's
  target rating) is released once as ``c + clip(P - c, C) + N(0, sigma^2 I)``
  (``privacy.dp_prototypes.release``, `key`); the bilinear fit, the bridge and the
  neighbours then see the released vectors only. ``eps``: the user-level budget
  (add/remove, delta = 1e-5); the clip C comes from the registry's grid.
  """
  opts = dict(opts)
  dp_names = {f.name for f in dataclasses.fields(dp_prototypes.DPPrototypeConfig)}
  dp_opts = {k: opts.pop(k) for k in list(opts) if k in dp_names}
  dp_opts["epsilon"] = float(opts.pop("eps")) if "eps" in opts else None
  dp_cfg = dp_prototypes.DPPrototypeConfig(**dp_opts)
  center = dp_prototypes.public_center(ctx.scorer.item_matrix(ctx.params_s), dp_cfg)
  inp = plus_inputs(ctx.scorer, ctx.params_s, ctx.params_t, ctx.data,
                    method_lib.StageKeys.from_seed(ctx.seed), ctx.bridge, ctx.inversion,
                    (float(ctx.inversion.target_rating),),
                    source_release=lambda P: dp_prototypes.release(P, center, key, dp_cfg))
  return _fit_plus(ctx, inp, pairs, opts, "PFCDR-Bilinear-DP")


def _run_tgt(ctx, opts, pairs, key):
  del opts, key
  with phase_timer.predicting(pairs[0].size):
    return np.asarray(ctx.scorer.predict(ctx.params_t, jnp.asarray(pairs[0]),
                                         jnp.asarray(pairs[1])))


def _run_emcdr(ctx, opts, pairs, key):
  b = {"lr": ctx.bridge.lr, "epochs": ctx.bridge.epochs, "batch_size": ctx.bridge.batch_size,
       **opts}
  return emcdr.fit_predict(ctx.scorer, ctx.params_s, ctx.params_t,
                           np.asarray(ctx.data.train_users, np.int32), pairs[0], pairs[1], key,
                           lr=b["lr"], epochs=b["epochs"], batch_size=b["batch_size"],
                           space=b.get("space", "auto"))


def _run_global_mean(ctx, opts, pairs, key):
  del opts, key
  return floors.global_mean_predict(ctx.data.target_train.rating, pairs[0].size)


def _run_item_mean(ctx, opts, pairs, key):
  del opts, key
  t = ctx.data.target_train
  return floors.item_mean_predict(t.item, t.rating, pairs[1], t.n_items)
