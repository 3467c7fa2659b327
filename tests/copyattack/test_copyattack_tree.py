"""Tests of the balanced clustering tree, masks and tree policy (Sec. 4.3)."""
import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.copyattack import policy
from pfcdr_jax.copyattack import tree as tree_lib


@pytest.mark.parametrize("n,depth", [(8, 3), (9, 2), (27, 3), (28, 3),
                                     (100, 3), (1000, 3), (50, 4), (5, 2)])
def test_depth_rule(n, depth):
  c = tree_lib.branching_for_depth(n, depth)
  assert c ** (depth - 1) < n <= c**depth
  # c is the smallest branching obeying n <= c^d.
  assert c == 2 or (c - 1) ** depth < n


def test_depth_rule_rejects_too_deep():
  with pytest.raises(ValueError, match="depth"):
    tree_lib.branching_for_depth(4, 3)  # c=2: 2^2 = 4 is not < 4.


@pytest.mark.parametrize("n,depth", [(37, 2), (100, 3), (64, 3), (130, 4)])
def test_balanced_tree_sizes(n, depth):
  x = np.random.default_rng(0).normal(size=(n, 4))
  tr = tree_lib.build_tree(x, depth, seed=0)
  c = tr.branching
  # Every user sits in exactly one leaf.
  placed = tr.leaf_user[tr.leaf_user >= 0]
  assert sorted(placed.tolist()) == list(range(n))
  assert tr.n_nonleaf == (c**depth - 1) // (c - 1)
  for level in range(1, depth + 1):
    sizes = tree_lib.subtree_sizes(tr, level).reshape(-1, c)
    parents = tree_lib.subtree_sizes(tr, level - 1)
    for sib, parent in zip(sizes, parents):
      assert sib.sum() == parent
      # Sibling sizes differ by at most one.
      assert sib.max() - sib.min() <= 1


def test_balanced_assign_is_balanced_and_prefers_near_centroid():
  rng = np.random.default_rng(1)
  x = np.concatenate([rng.normal(size=(10, 2)) + 10, rng.normal(size=(13, 2))])
  cent = np.array([[10.0, 10.0], [0.0, 0.0]])
  lab = tree_lib.balanced_assign(x, cent)
  assert sorted(np.bincount(lab).tolist()) == [11, 12]
  # All points near the first centroid go there.
  assert (lab[:10] == 0).all()


def test_clusters_group_similar_users():
  rng = np.random.default_rng(2)
  centers = np.array([[0, 0], [20, 0], [0, 20], [20, 20]], float)
  x = np.concatenate([c + rng.normal(size=(4, 2)) for c in centers])
  tr = tree_lib.build_tree(x, 2, seed=0)  # c = 4
  groups = tr.leaf_user.reshape(4, 4)
  for g in groups:
    assert len(set((u // 4) for u in g if u >= 0)) == 1


def _small_tree(n=13, depth=3, seed=0):
  x = np.random.default_rng(seed).normal(size=(n, 3))
  return tree_lib.build_tree(x, depth, seed=seed)


def test_target_mask_and_level_masks():
  tr = _small_tree()
  profiles = np.full((13, 3), -1, np.int32)
  profiles[[2, 7], 0] = 5
  profiles[:, 1] = 1
  leaf = tree_lib.target_leaf_mask(jnp.asarray(profiles),
                                   jnp.asarray(tr.leaf_user), jnp.int32(5))
  users = sorted(tr.leaf_user[np.asarray(leaf)].tolist())
  assert users == [2, 7]
  masks = tree_lib.level_masks(leaf, tr.branching, tr.depth)
  assert bool(masks[0][0])  # the item is in the source: root reachable.
  for l in range(tr.depth):
    np.testing.assert_array_equal(
        np.asarray(masks[l]),
        np.asarray(leaf).reshape(tr.branching**l, -1).any(-1))


def _policy(tr, seed=0):
  cfg = policy.PolicyConfig(emb_dim=3, hidden=5, branching=tr.branching,
                            depth=tr.depth)
  params = jax.jit(policy.init_policy, static_argnums=1)(jax.random.key(seed), cfg)
  # Spread the logits so the distribution is far from uniform.
  params["tree"] = jax.tree.map(lambda a: a * 20.0, params["tree"])
  return cfg, params


def _all_leaf_log_probs(params, cfg, state, masks):
  fn = jax.jit(jax.vmap(
      lambda leaf: policy.tree_log_prob(params, cfg, state, leaf, masks)))
  return fn(jnp.arange(cfg.n_slots))


def test_path_distribution_sums_to_one_over_unmasked_leaves():
  tr = _small_tree()
  cfg, params = _policy(tr)
  rng = np.random.default_rng(0)
  leaf_mask = (tr.leaf_user >= 0) & (rng.random(tr.n_slots) < 0.5)
  leaf_mask[np.flatnonzero(tr.leaf_user >= 0)[0]] = True
  masks = tree_lib.level_masks(jnp.asarray(leaf_mask), tr.branching, tr.depth)
  state = jnp.asarray(rng.normal(size=6), jnp.float32)
  logp = _all_leaf_log_probs(params, cfg, state, masks)
  prob = np.exp(np.asarray(logp))
  np.testing.assert_allclose(prob[leaf_mask].sum(), 1.0, rtol=1e-5)
  assert (prob[~leaf_mask] == 0).all()

  # Plain reference: product of per-node masked softmaxes along the path.
  c, d = tr.branching, tr.depth
  lm = [np.asarray(m) for m in masks]
  tree_np = jax.tree.map(np.asarray, params["tree"])
  for leaf in itertools.islice(np.flatnonzero(leaf_mask), 5):
    p, node = 1.0, 0
    for l in range(d):
      w = jax.tree.map(lambda a: a[node], tree_np[l])
      w = w["params"]
      hid = np.maximum(np.asarray(state) @ w["Dense_0"]["kernel"]
                       + w["Dense_0"]["bias"], 0)
      logits = hid @ w["Dense_1"]["kernel"] + w["Dense_1"]["bias"]
      ok = lm[l + 1][node * c:(node + 1) * c]
      e = np.where(ok, np.exp(logits - logits[ok].max()), 0)
      digit = (leaf // c ** (d - l - 1)) % c
      p *= e[digit] / e.sum()
      node = node * c + digit
    np.testing.assert_allclose(prob[leaf], p, rtol=1e-4)


def test_sampling_never_reaches_masked_leaf_and_matches_distribution():
  tr = _small_tree(n=20, depth=2)
  cfg, params = _policy(tr, seed=1)
  leaf_mask = np.zeros(tr.n_slots, bool)
  leaf_mask[np.flatnonzero(tr.leaf_user >= 0)[[0, 3, 4, 11]]] = True
  masks = tree_lib.level_masks(jnp.asarray(leaf_mask), tr.branching, tr.depth)
  state = jnp.ones((6,), jnp.float32)
  keys = jax.random.split(jax.random.key(0), 4000)
  leaves = np.asarray(jax.jit(jax.vmap(
      lambda k: policy.tree_sample(params, cfg, state, masks, k)))(keys))
  assert leaf_mask[leaves].all()
  logp = _all_leaf_log_probs(params, cfg, state, masks)
  freq = np.bincount(leaves, minlength=tr.n_slots) / len(leaves)
  np.testing.assert_allclose(freq, np.exp(np.asarray(logp)), atol=0.03)
  greedy = policy.tree_sample(params, cfg, state, masks, keys[0], greedy=True)
  assert leaf_mask[int(greedy)]


def _np_level_masks(leaf_mask, c, d):
  """Node j of level l is reachable iff a leaf in [j c^(d-l), (j+1) c^(d-l))."""
  out = []
  for l in range(d + 1):
    span = c ** (d - l)
    out.append(np.array([leaf_mask[j * span:(j + 1) * span].any()
                         for j in range(c**l)]))
  return out


class KernelsTest(chex.TestCase):
  """The mask and masked-softmax kernels, jitted and not, against numpy."""

  @chex.variants(with_jit=True, without_jit=True)
  def test_level_masks_match_numpy(self):
    c, d = 3, 3
    fn = self.variant(functools.partial(tree_lib.level_masks, branching=c,
                                        depth=d))
    rng = np.random.default_rng(0)
    for p_on in (0.0, 0.1, 0.5, 1.0):
      leaf = rng.random(c**d) < p_on
      got = fn(jnp.asarray(leaf))
      for g, ref in zip(got, _np_level_masks(leaf, c, d)):
        np.testing.assert_array_equal(np.asarray(g), ref)

  @chex.variants(with_jit=True, without_jit=True)
  def test_masked_log_softmax_matches_numpy(self):
    fn = self.variant(policy.masked_log_softmax)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=7).astype(np.float32)
    mask = np.array([1, 0, 1, 1, 0, 0, 1], bool)
    ref = np.full(7, -np.inf, np.float32)
    z = logits[mask] - logits[mask].max()
    ref[mask] = z - np.log(np.exp(z).sum())
    np.testing.assert_allclose(np.asarray(fn(jnp.asarray(logits),
                                             jnp.asarray(mask))), ref,
                               rtol=1e-6, atol=1e-6)
    none = np.asarray(fn(jnp.asarray(logits), jnp.zeros(7, bool)))
    assert np.isneginf(none).all()
