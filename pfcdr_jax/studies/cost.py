"""Training time, testing time and cross-domain storage per method (the paper's Table 3).

Times are wall-clock seconds of one run in this process (JIT compilation included, as
a first run pays it), each stage synchronised by converting its output to numpy.

- Shared: pretraining the source and the target scorer (``models.train.train_scorer``,
  uncached), which every method built on the base models needs; TGT's training is it.
- PFCDR: training = inverting both domains' prototypes + the bridge + choosing K on the
  validation users; testing = top-k matching and Eq. (14) for every test rating.
- EMCDR: training = fitting the map; testing = mapping the cold users and predicting.
- TGT: its training is the shared target pretraining; testing = predicting.
- Every other registry method (TGT included): testing = the prediction step of the
  grid point that validation chose, timed inside the method by ``phase_timer`` (the
  step that turns the trained state into predictions of the requested pairs). The
  registry predicts the validation and the test pairs in one step, so this covers
  both (``test_pairs`` of them): an upper bound on the test users alone. Training =
  the rest of its ``selection.fit_predict`` call (the whole grid, the other points'
  prediction steps included). A method whose brackets do not match its grid (none
  today) gets testing = None (not separable) and the whole call as training.

Storage: the bytes a method must send from the source domain to the target domain
(``sent``) and the extra state it keeps to predict cold users (``kept``: maps,
networks, statistics; the pretrained target model, shared by all, is not counted).
PFCDR and EMCDR count the arrays of the run itself; the others count the arrays their
modules build, by shape (``jax.eval_shape`` of their ``init``), float32 / int32 = 4
bytes. "Users sent" are the bridge plus cold users (``method.source_prototype_users``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.pfcdr import bridge as bridge_lib
from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.plus import config as plus_config
from pfcdr_jax.models import metrics as metrics_lib
from pfcdr_jax.infra import phase_timer
from pfcdr_jax.baselines import cmf
from pfcdr_jax.baselines import emcdr as emcdr_lib
from pfcdr_jax.baselines import fedcdr
from pfcdr_jax.baselines import lightgcn
from pfcdr_jax.baselines import pf2cdr
from pfcdr_jax.baselines import ppgencdr
from pfcdr_jax.baselines import ppgencdr_config
from pfcdr_jax.baselines import pricdr
from pfcdr_jax.baselines import ptupcdr
from pfcdr_jax.baselines import registry
from pfcdr_jax.baselines import selection
from pfcdr_jax.baselines import sscdr
from pfcdr_jax.baselines.context import BaselineContext
from pfcdr_jax.models import train as train_lib


class Cost(NamedTuple):
  """One method's row of Table 3 (times in seconds, None = not separable / shared)."""
  method: str
  train_s: float | None
  test_s: float | None
  sent_bytes: int | None     # None: not modelled
  kept_bytes: int | None
  mae: float
  what: str
  test_pairs: int | None = None   # pairs the testing time covers (registry: val + test)


def nbytes(*arrays: Any) -> int:
  """Total bytes of arrays or shape structs (pytrees allowed)."""
  leaves = jax.tree_util.tree_leaves(arrays)
  return int(sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in leaves))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
  """``(fn(), seconds)``; `fn` must return host (numpy) values, so the work is done."""
  t0 = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t0


def pretraining(run, cfg: config_lib.PFCDRConfig) -> dict[str, float]:
  """Seconds to pretrain each domain's scorer from scratch (not the cache)."""
  out = {}
  for name, domain, key in (("source", run.data.source, run.keys.pretrain_source),
                            ("target", run.data.target_train, run.keys.pretrain_target)):
    _, out[name] = timed(lambda d=domain, k=key: jax.tree_util.tree_map(
        np.asarray, train_lib.train_scorer(run.scorer, d, config_lib.train_config(cfg), k
                                           ).params))
  return out


def pfcdr_cost(run, cfg: config_lib.PFCDRConfig) -> Cost:
  """PFCDR: inversion + bridge + K selection, then top-k prediction of the test users."""
  data, inv = run.data, cfg.inversion
  n_bridge = len(method_lib.bridge_users(data))

  def train():
    protos = method_lib.invert_run(run.scorer, run.params_s, run.params_t, data, run.keys, inv)
    W, _ = method_lib.fit_bridge(protos.source[:n_bridge], protos.target, run.keys.bridge,
                                 cfg.bridge)
    P_hat = method_lib.transfer(W, protos.source[n_bridge:])
    W_t, V_t = method_lib.representations(run.scorer, run.params_t, data.target_train.n_users)
    valid = method_lib.candidates(data, cfg.topk)
    cold = method_lib.cold_users(data)
    k, _ = method_lib.select_k(P_hat, W_t, valid, V_t, data.target_val, cold, cfg.topk,
                               inv.target_rating)
    return protos, W, (P_hat, W_t, valid, V_t, cold, k)

  (protos, W, state), train_s = timed(train)
  P_hat, W_t, valid, V_t, cold, k = state
  pred, test_s = timed(lambda: method_lib.predict_cold(
      P_hat, W_t, valid, V_t, data.target_test, cold, k, cfg.topk, inv.target_rating))
  return Cost("PFCDR", train_s, test_s, nbytes(protos.source), nbytes(W),
              float(metrics_lib.mae(pred, data.target_test.rating)),
              f"sent: source prototypes {protos.source.shape}; kept: bridge {W.shape}",
              int(data.target_test.rating.size))


def emcdr_cost(run, cfg: config_lib.PFCDRConfig) -> Cost:
  """EMCDR: the map's fit, then mapping the cold users and predicting their ratings
  (in ``emcdr.resolve_space``'s space: the tower output on YouTube-DNN, as the
  registry's EMCDR)."""
  b, data = cfg.bridge, run.data
  train_users = np.asarray(data.train_users, np.int32)
  space = emcdr_lib.resolve_space("auto", run.scorer)
  W, train_s = timed(lambda: np.asarray(emcdr_lib.map_user_embeddings(
      run.params_s, run.params_t, train_users, run.keys.emcdr, lr=b.lr, epochs=b.epochs,
      batch_size=b.batch_size, scorer=run.scorer, space=space)))
  test = data.target_test
  vectors = lambda params, u: (run.scorer.user_repr(params, u) if space == "repr"
                               else emcdr_lib.user_embeddings(params)[u])

  def predict():
    cold = jnp.asarray(np.unique(test.user))
    mapped = bridge_lib.apply_bridge(jnp.asarray(W), vectors(run.params_s, cold))
    if space == "repr":
      rep = jnp.zeros((data.target_train.n_users, mapped.shape[1])).at[cold].set(mapped)
      V = run.scorer.item_matrix(run.params_t)
      return np.asarray(jnp.sum(rep[jnp.asarray(test.user)] * V[jnp.asarray(test.item)], -1))
    params = dict(run.params_t)
    params["user"] = run.params_t["user"].at[cold].set(mapped)
    return np.asarray(run.scorer.predict(params, jnp.asarray(test.user), jnp.asarray(test.item)))

  pred, test_s = timed(predict)
  sent = np.asarray(vectors(run.params_s, jnp.asarray(method_lib.source_prototype_users(data))))
  return Cost("EMCDR", train_s, test_s, nbytes(sent), nbytes(W),
              float(metrics_lib.mae(pred, test.rating)),
              f"sent: source user {'representations' if space == 'repr' else 'embeddings'} "
              f"{sent.shape}; kept: map {W.shape}", int(test.rating.size))


def _options(name: str) -> dict[str, Any]:
  base, options = registry.parse_name(name)
  return {**registry.ENTRIES[base].defaults, **options}


def _f32(*shape: int) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(tuple(int(s) for s in shape), jnp.float32)


def _i32(*shape: int) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(tuple(int(s) for s in shape), jnp.int32)


def storage(name: str, run) -> tuple[list | None, list | None, str]:
  """``(sent, kept, description)``: the arrays (or shapes) a registry method needs.

  ``(None, None, ...)`` for a method without a rule here (a registry entry added later).
  """
  base, opts = registry.parse_name(name)[0], _options(name)
  data, key = run.data, jax.random.PRNGKey(0)
  d = int(np.asarray(run.scorer.item_matrix(run.params_t)).shape[1])
  n = len(method_lib.source_prototype_users(data))
  n_src_items, n_tgt_items = data.source.n_items, data.target_train.n_items
  users_emb = _f32(n, d)
  if base in ("TGT",):
    return [], [], "nothing crosses domains; predicts with the target model"
  if base == "GlobalMean":
    return [], [_f32(1)], "kept: the target mean"
  if base in ("ItemMean", "BiasFloor"):
    sent = [_f32(n)] if base == "BiasFloor" else []
    return sent, [_f32(n_tgt_items + 1)], ("sent: one source offset per user; " if sent
                                           else "") + "kept: per-item target statistics"
  if base == "SourceUserMean":
    return [_f32(n)], [_f32(1)], "sent: each user's source mean; kept: the domain shift"
  if base in ("EMCDR", "DP-EMCDR"):
    return [users_emb], [_f32(d, d)], "sent: (noised) source user embeddings; kept: map"
  if base == "PTUPCDR":
    seq = int(opts.get("max_seq_len", ptupcdr.PTUPCDRConfig.max_seq_len))
    meta = int(opts.get("meta_dim", ptupcdr.PTUPCDRConfig.meta_dim))
    kept = jax.eval_shape(lambda: ptupcdr.init(key, d, meta))
    return ([users_emb, _f32(n_src_items, d), _i32(n, seq)], [kept],
            "sent: source user and item embeddings, interaction histories; kept: meta net")
  if base == "SSCDR":
    hidden = tuple(opts.get("hidden", sscdr.SSCDRConfig.hidden))
    users = np.isin(data.source.user, method_lib.source_prototype_users(data))
    kept = jax.eval_shape(lambda: sscdr.init_mapping(key, d, d, hidden))
    return ([users_emb, _f32(n_src_items, d), _i32(int(users.sum()), 2)], [kept],
            "sent: source user and item embeddings, the users' source interactions; "
            "kept: mapping")
  if base == "CMF":
    s = data.source
    n_all = s.n_users + data.target_train.n_users - data.n_overlap
    kept = jax.eval_shape(lambda: cmf.init(key, n_all, s.n_items, n_tgt_items, d))
    return ([_i32(s.rating.size, 2), _f32(s.rating.size)], [kept],
            "sent: every source rating; kept: the joint factors")
  if base == "LightGCN":
    t = data.target_train
    return [], [jax.eval_shape(lambda: lightgcn.init(key, t.n_users, t.n_items, d))], (
        "kept: its own target factors")
  if base == "PriCDR-S":
    proj = int(opts.get("proj_dim", pricdr.PriCDRConfig.proj_dim))
    hidden = tuple(opts.get("hidden", pricdr.PriCDRConfig.hidden))
    kept = jax.eval_shape(lambda: pricdr.init(key, proj, hidden, d))
    return ([_f32(data.source.n_users, proj)], [kept],
            "sent: the published (noised, projected) source matrix; kept: encoder/decoder")
  return _private_storage(base, opts, run, d, n)


def _private_storage(base: str, opts: dict, run, d: int, n: int
                     ) -> tuple[list | None, list | None, str]:
  """The storage rules of the paper's private baselines, PFCDR-DP and PFCDR+."""
  data, key = run.data, jax.random.PRNGKey(0)
  n_src_items, n_tgt_items = data.source.n_items, data.target_train.n_items
  if base == "PFCDR-DP":
    return [_f32(n, d)], [_f32(d, d)], "sent: clipped, noised prototypes; kept: bridge"
  if base == "PFCDR+":
    cold = method_lib.cold_users(data)
    n_test = int(np.isin(cold.users, np.asarray(data.test_users)).sum())
    kappas = len(plus_config.PlusConfig().offset_shrinkage)
    # z_u = [P_u, o_u, a_u, 1], x_j = [v_j, b_j, 1]: M is (d + 3) x (d + 2).
    return ([_f32(n, d), _f32(n - n_test, 2 * kappas), _f32(n_test, 2)],
            [_f32(d, d), _f32((d + 3) * (d + 2)), _f32(n_tgt_items)],
            "sent: prototypes + 2 scalars per user (one pair per kappa of the grid for "
            "bridge / validation users); kept: PFCDR's bridge, M, target item biases")
  # PF2CDR / PPGenCDR release the training overlap users and the cold users.
  n_rel = len(np.union1d(np.asarray(data.train_users), method_lib.cold_users(data).users))
  if base == "PF2CDR":
    return ([_f32(n_rel, d)], [jax.eval_shape(lambda: pf2cdr.init(key, d, jnp.zeros(d)))],
            "sent: clipped, noised source user embeddings; kept: transfer + gate")
  if base == "PPGenCDR":
    cfg = ppgencdr_config.PPGenCDRConfig(gen_dim=d, **{   # codes of size d, as the registry runs it
        k: v for k, v in opts.items()
        if k in ppgencdr_config.PPGenCDRConfig.__dataclass_fields__ and k != "gen_dim"})
    gen = [_f32(n_rel, cfg.gen_dim), _f32(cfg.gen_dim, cfg.gen_hidden), _f32(cfg.gen_hidden),
           _f32(cfg.gen_hidden, n_src_items), _f32(n_src_items)]
    kept = jax.eval_shape(lambda: ppgencdr.init_target(key, n_src_items, d, jnp.zeros(d), cfg))
    return gen, [kept], "sent: the DP generator (codes of the released users); kept: enc/dec"
  if base == "FedCDR":
    f = fedcdr.FedCDRConfig(**{k: v for k, v in opts.items()
                               if k in fedcdr.FedCDRConfig.__dataclass_fields__})
    u_s, u_t, b, e = data.source.n_users, data.target_train.n_users, f.local_batch, f.dim + 1
    n_bridge = len(method_lib.bridge_users(data))
    per_round = [_i32(u_s, b), _f32(u_s, b, e), _i32(u_t, b), _f32(u_t, b, e),
                 _f32(n_bridge, e, e), _f32(n_bridge, e)]
    return (per_round * f.rounds, [_f32(n_src_items, e), _f32(n_tgt_items, e), _f32(e, e),
                                    _f32(e)],
            f"sent: every client's uploads to the server over {f.rounds} rounds (item ids, "
            "item-row and map gradients); kept: the server model")
  return None, None, "storage not modelled for this method (no rule in studies/cost.py)"


def chosen_phase(phases: list[phase_timer.Phase], chosen: dict[str, Any]
                 ) -> phase_timer.Phase | None:
  """The prediction step of the grid point ``selection.fit_predict`` kept
  (``chosen["grid_index"]``), or None if the steps do not match the grid."""
  if len(phases) != len(chosen.get("grid", ())) or "grid_index" not in chosen:
    return None
  return phases[chosen["grid_index"]]


def registry_cost(name: str, run, cfg: config_lib.PFCDRConfig) -> Cost:
  """A registry method: testing = the chosen point's prediction step, training = the
  rest of its ``fit_predict`` call; storage by shape."""
  ctx = BaselineContext(data=run.data, scorer=run.scorer, params_s=run.params_s,
                        params_t=run.params_t, key=run.keys.baselines, seed=cfg.seed,
                        emcdr_key=run.keys.emcdr, bridge=cfg.bridge)
  with phase_timer.recording() as phases:
    (pred, chosen), seconds = timed(lambda: selection.fit_predict(name, ctx))
  step = chosen_phase(phases, chosen)
  test_s, n_pairs = (None, None) if step is None else (step.seconds, step.n_pairs)
  train_s = seconds - (test_s or 0.0)
  sent, kept, what = storage(name, run)
  sent_b, kept_b = (None, None) if sent is None else (nbytes(sent), nbytes(kept))
  mae = float(metrics_lib.mae(pred, run.data.target_test.rating))
  if registry.parse_name(name)[0] == "TGT":   # trained = the shared target pretraining
    return Cost("TGT", None, test_s if step else seconds, 0, 0, mae, what, n_pairs)
  return Cost(registry.display_name(name), train_s, test_s, sent_b, kept_b, mae, what,
              n_pairs)


def table(run, cfg: config_lib.PFCDRConfig, names, *, time_pretraining: bool = True
          ) -> dict[str, Any]:
  """Every method's :class:`Cost` (PFCDR, EMCDR measured stage by stage) and pretraining."""
  rows = [pfcdr_cost(run, cfg), emcdr_cost(run, cfg)]
  rows += [registry_cost(n, run, cfg) for n in names if registry.parse_name(n)[0] != "EMCDR"]
  return {"pretraining_s": pretraining(run, cfg) if time_pretraining else None,
          "methods": [r._asdict() for r in rows]}
