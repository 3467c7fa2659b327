"""Name -> method: one `fit_predict(name, ctx)` for every method next to PFCDR.

Every method a run reports besides PFCDR itself -- TGT, EMCDR, the floors and the
Table 1 baselines -- is an :class:`Entry` of :data:`ENTRIES`. `pipeline.run_pfcdr`
calls :func:`fit_predict` for each name in ``PFCDRConfig.baselines.names`` with the
run's :class:`BaselineContext`, caches the predictions, and stores the returned
choices under ``results["selected"]["baselines"][name]``.

Adding a method: write ``pfcdr_jax/baselines/<method>.py`` with a
``fit_predict(..., pairs, cfg, key)`` that predicts (user, item) pairs, add a runner
``_run_<method>(ctx, options, pairs, key)`` that calls it and one ``ENTRIES`` line
(grid, fixed defaults, quick options), and list its name in a run's
``baselines.names`` (``table1.py --baselines``).

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
tower output, not the raw embedding that the PFCDR paper's Sec. 5.3 text describes
(EMCDR maps the tower output on YouTube-DNN too, as the public code does; the raw-table
variant is ``"EMCDR(space=raw)"``, see ``baselines/emcdr.py``). We map the tower output because SSCDR pulls mapped users and items into one
metric space and PTUPCDR / DP-EMCDR / PriCDR-S predict with a dot product against the
target items: both need the space in which ``u . v`` is the rating. CMF and LightGCN
train their own factors (base model not used); SourceUserMean is a floor.
"""

from __future__ import annotations

import logging
import re
import zlib
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.plus import method as method_plus
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
from pfcdr_jax.baselines import pricdr
from pfcdr_jax.baselines import ptupcdr
from pfcdr_jax.baselines import source_user_mean
from pfcdr_jax.baselines import sscdr
from pfcdr_jax.baselines.context import BaselineContext
from pfcdr_jax.privacy import dp_prototypes

DP_EPSILONS = (0.5, 1.0, 5.0, 10.0)
DP_DELTA = 1e-5

# Part of every baseline's stage-cache key (pipeline.run_pfcdr): bump it when a change
# to a baseline's code changes its predictions, so cached predictions are not reused.
CACHE_VERSION = 2

# The Table 1 methods beyond those every run reports (config.MAIN_BASELINES).
NAMES = ("LightGCN", "CMF", "SSCDR", "PTUPCDR",
         *(f"DP-EMCDR(eps={e:g})" for e in DP_EPSILONS), "PriCDR-S", "SourceUserMean",
         # The paper's private baselines we could build (issue 14) and PFCDR's DP variant.
         "FedCDR", "PF2CDR", "PPGenCDR", *(f"PFCDR-DP(eps={e:g})" for e in DP_EPSILONS),
         # PFCDR+ with its offset under per-rating Laplace DP (method_plus.rating_epsilon).
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


def _key_for(ctx: BaselineContext, base: str) -> jax.Array:
  if ENTRIES[base].key == "emcdr":
    return ctx.emcdr_key
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

  With ``eps`` the per-person clip defaults to C = 1 (Adam makes the result nearly
  C-invariant once every upload is clipped: measured in BUILD_NOTES).
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
                              cfg=ppgencdr.PPGenCDRConfig(gen_dim=_emb_dim(ctx), **opts), key=key)


def _run_source_user_mean(ctx, opts, pairs, key):
  cfg = source_user_mean.SourceUserMeanConfig(**opts)
  return source_user_mean.fit_predict(_tuples(ctx.data.source), _tuples(ctx.data.target_train),
                                      pairs, n_users_src=ctx.data.source.n_users, cfg=cfg,
                                      key=key)


def _run_bias_floor(ctx, opts, pairs, key):
  cfg = bias_floor.BiasFloorConfig(**opts)
  return bias_floor.fit_predict(_tuples(ctx.data.source), _tuples(ctx.data.target_train), pairs,
                                n_users_src=ctx.data.source.n_users,
                                n_items_tgt=ctx.data.target_train.n_items, cfg=cfg, key=key)


def _run_pfcdr_dp(ctx, opts, pairs, key):
  opts = dict(opts)
  opts["epsilon"] = float(opts.pop("eps")) if "eps" in opts else None
  return dp_prototypes.fit_predict_pairs(
      ctx.scorer, ctx.params_s, ctx.params_t, ctx.data, pairs,
      cfg=dp_prototypes.DPPrototypeConfig(**opts), inversion=ctx.inversion,
      bridge=ctx.bridge, topk=ctx.topk, key=key, seed=ctx.seed)


def _run_pfcdr_plus(ctx, opts, pairs, key):
  """PFCDR+ (``method_plus``): its own settings are chosen inside, on validation.

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
  inp = method_plus.plus_inputs(ctx.scorer, ctx.params_s, ctx.params_t, ctx.data,
                                method_lib.StageKeys.from_seed(ctx.seed), ctx.bridge,
                                ctx.inversion, rs)
  val = ctx.data.target_val
  fit = method_plus.fit_predict_plus(inp, (val.user, val.item, val.rating),
                                     method_plus.Pairs(*pairs), method_plus.PlusConfig(**opts))
  logging.getLogger(__name__).info("PFCDR+: chosen on validation %s; validation MAE by "
                                   "step %s", fit.chosen, fit.val_mae)
  return fit.pred


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
    # Ours (issue 15): one grid point here; method_plus selects its settings itself.
    "PFCDR+": Entry(_run_pfcdr_plus, reads=("inversion", "bridge")),
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


def selection_grid(name: str) -> tuple[dict[str, Any], ...]:
  """The settings tried for `name` (defaults + options, grid over the free fields)."""
  base, options = parse_name(name)
  fixed = {**ENTRIES[base].defaults, **options}
  points = []
  for point in ENTRIES[base].grid:
    merged = {**fixed, **{k: v for k, v in point.items() if k not in options}}
    if merged not in points:
      points.append(merged)
  return tuple(points)


def fit_predict(name: str, ctx: BaselineContext) -> tuple[np.ndarray, dict[str, Any]]:
  """Runs baseline `name`, choosing its settings on the validation users.

  Returns ``(test predictions, chosen)``; :func:`fit_predict_val` also returns the
  kept setting's validation predictions.
  """
  test_pred, _, chosen = fit_predict_val(name, ctx)
  return test_pred, chosen


def fit_predict_val(name: str, ctx: BaselineContext
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
  """:func:`fit_predict` plus the validation predictions of the kept setting.

  Args:
    name: one of :data:`NAMES`, optionally with ``(key=value,...)`` options.
    ctx: the run's split and shared pretrained base models.

  Returns:
    ``(pred float32[T], val_pred float32[V], chosen)``: predictions for
    ``ctx.data.target_test`` and ``ctx.data.target_val`` in their rating order, and the
    chosen settings with the validation MAE of every grid point
    (``grid``, in grid order) and the position of the kept one (``grid_index``).

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
  runner = ENTRIES[base].runner
  best = None
  tried = []
  for index, point in enumerate(grid):
    pred = np.asarray(runner(ctx, point, pairs, key), np.float32)
    if pred.shape != pairs[0].shape:
      raise ValueError(f"{name}: expected {pairs[0].shape} predictions, got {pred.shape}")
    val_mae = float(np.mean(np.abs(pred[:n_val] - val.rating))) if n_val else float("nan")
    tried.append({**point, "val_mae": val_mae})
    if best is None or val_mae < best[0]:
      best = (val_mae, index, pred[n_val:], pred[:n_val])
  val_mae, index, test_pred, val_pred = best
  point = grid[index]
  if not np.all(np.isfinite(test_pred)):
    raise FloatingPointError(f"{name}: non-finite test predictions with settings {point}")
  chosen = {**point, "val_mae": val_mae, "grid": tried, "grid_index": index}
  return test_pred.astype(np.float32), val_pred.astype(np.float32), chosen
