"""The incremental black box gives the full re-encoding's scores and lists."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import target_model

N_ITEMS, N_USERS, L_MAX = 14, 12, 5


@pytest.mark.parametrize("item_id,item_norm", [("none", "sqrt"),
                                               ("concat", "mean")])
def test_incremental_matches_full_encoding(item_id, item_norm):
  rng = np.random.default_rng(0)
  pairs = np.unique(np.stack([rng.integers(0, N_USERS, 60),
                              rng.integers(0, N_ITEMS, 60)], 1), axis=0)
  pairs = pairs.astype(np.int32)
  model = target_model.PinSage(n_items=N_ITEMS, n_users=N_USERS, dim=4,
                               item_norm=item_norm, item_id=item_id)
  params = model.init(jax.random.key(0), jnp.asarray(pairs[:, 0]),
                      jnp.asarray(pairs[:, 1]), jnp.ones(len(pairs)))
  params = jax.tree.map(lambda a: a * 5.0, params)
  made = [blackbox.make_blackbox(model, params, pairs, N_USERS, extra_users=3,
                                 extra_interactions=3 * L_MAX,
                                 max_profile_len=L_MAX, incremental=inc)
          for inc in (False, True)]
  states = [m[1] for m in made]
  users = jnp.asarray([0, 3, 7, 11, 12, 13], jnp.int32)  # two injected later
  for step in range(3):
    prof = np.full(L_MAX, -1, np.int32)
    n = int(rng.integers(1, L_MAX + 1))
    prof[:n] = rng.choice(N_ITEMS, n, replace=False)
    for j, (bb, _, _) in enumerate(made):
      states[j], uid = bb.inject(states[j], jnp.asarray(prof), jnp.int32(n))
      assert int(uid) == N_USERS + step
    live = users[users < N_USERS + step + 1]
    full, inc = (m[2](st, live) for m, st in zip(made, states))
    np.testing.assert_allclose(inc, full, rtol=1e-4, atol=1e-5)
    tops = [m[0].topk(st, live, 4) for m, st in zip(made, states)]
    np.testing.assert_array_equal(tops[0][0], tops[1][0])
    assert int(tops[1][1].n_queries) == 1
