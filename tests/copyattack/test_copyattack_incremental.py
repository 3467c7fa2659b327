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


def test_position_in_ranking_equals_the_top_k_list_with_ties():
  # Integer scores in 0..3 over 9 items: many ties, and excluded items at -inf.
  rng = np.random.default_rng(1)
  scores = rng.integers(0, 4, (50, 9)).astype(np.float32)
  scores[rng.random(scores.shape) < 0.2] = -np.inf
  top = np.asarray(jax.lax.top_k(jnp.asarray(scores), 9)[1])
  for item in range(9):
    got = blackbox.position_in_ranking(jnp.asarray(scores), jnp.int32(item))
    np.testing.assert_array_equal(got, np.argmax(top == item, -1))


@pytest.mark.parametrize("incremental", [False, True])
def test_position_query_reads_the_full_list_and_counts_once(incremental):
  rng = np.random.default_rng(2)
  pairs = np.unique(np.stack([rng.integers(0, N_USERS, 60),
                              rng.integers(0, N_ITEMS, 60)], 1), axis=0)
  pairs = pairs.astype(np.int32)
  model = target_model.PinSage(n_items=N_ITEMS, n_users=N_USERS, dim=4)
  params = model.init(jax.random.key(0), jnp.asarray(pairs[:, 0]),
                      jnp.asarray(pairs[:, 1]), jnp.ones(len(pairs)))
  bb, state, _ = blackbox.make_blackbox(model, params, pairs, N_USERS,
                                        extra_users=2,
                                        extra_interactions=2 * L_MAX,
                                        max_profile_len=L_MAX,
                                        incremental=incremental)
  state, _ = bb.inject(state, jnp.asarray([1, 4, 6, -1, -1], jnp.int32),
                       jnp.int32(3))
  users = jnp.arange(N_USERS + 1, dtype=jnp.int32)
  top, _ = bb.topk(state, users, N_ITEMS)
  for item in range(N_ITEMS):
    pos, after = bb.position(state, users, jnp.int32(item))
    np.testing.assert_array_equal(pos, np.argmax(np.asarray(top) == item, -1))
    assert int(after.n_queries) == int(state.n_queries) + 1
    # The fallback through topk (a platform without ``position``) agrees.
    via_topk, _ = blackbox.item_position(bb._replace(position=None), state,
                                         users, jnp.int32(item))
    np.testing.assert_array_equal(via_topk, pos)
