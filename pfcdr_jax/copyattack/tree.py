"""Balanced hierarchical clustering tree over source users and its masks.

Implements Section 4.3.1 (top-down balanced k-means tree, depth rule
``c^(d-1) < n <= c^d``) and Section 4.3.2 (masking subtrees whose profiles never
contain the target item) of Fan et al., "Attacking Black-box Recommendations via
Copying Cross-domain User Profiles".

The tree is stored as a *complete* c-ary tree of depth ``d``: non-leaf node ``j``
at level ``l`` (root: level 0, ``j = 0``) has children ``j * c + k`` at level
``l + 1``, ``k < c``; the ``c^d`` leaf slots at level ``d`` hold one source user
each or ``-1`` (an empty slot, always masked). A leaf slot written in base ``c``
is the root-to-leaf path. Construction runs once on the host (numpy); masks are
JAX functions so they can run inside a jitted rollout.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class ClusterTree:
  """A balanced c-ary clustering tree of fixed depth over ``n_users`` users.

  Attributes:
    leaf_user: int32[c**d], the source-user index at every leaf slot, -1 if empty.
    branching: c, children per non-leaf node.
    depth: d, number of non-leaf levels (a path has d choices).
    n_users: number of users placed in the tree.
  """

  leaf_user: np.ndarray
  branching: int
  depth: int
  n_users: int

  @property
  def n_slots(self) -> int:
    return self.branching**self.depth

  @property
  def n_nonleaf(self) -> int:
    """Number of non-leaf nodes I = (c^d - 1) / (c - 1) (Section 4.3.1)."""
    return sum(self.branching**l for l in range(self.depth))

  def level_sizes(self) -> tuple[int, ...]:
    """Number of non-leaf nodes at each level 0..d-1: (1, c, ..., c^(d-1))."""
    return tuple(self.branching**l for l in range(self.depth))


def branching_for_depth(n_users: int, depth: int) -> int:
  """Smallest branching ``c >= 2`` with ``c^(d-1) < n <= c^d`` (Section 4.3.1).

  Args:
    n_users: n^B, number of leaves (source users), >= 2.
    depth: d >= 1.

  Returns:
    c.

  Raises:
    ValueError: if no ``c >= 2`` satisfies the rule (the tree would be deeper
      than the number of users allows).
  """
  if n_users < 2 or depth < 1:
    raise ValueError(f"need n_users >= 2 and depth >= 1, got {n_users}, {depth}")
  c = max(2, int(np.ceil(n_users ** (1.0 / depth))) - 1)
  while c**depth < n_users:
    c += 1
  if not c ** (depth - 1) < n_users:
    raise ValueError(
        f"depth {depth} too large for {n_users} users: with c={c}, "
        f"c^(d-1)={c ** (depth - 1)} >= n; use a smaller depth")
  return c


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator,
           iters: int = 20) -> np.ndarray:
  """Lloyd's k-means with k-means++ seeding (Section 4.3.1, ref. [17]).

  Args:
    x: float[m, e] points, m >= k.
    k: number of centroids.
    rng: numpy generator (seeded by the caller).
    iters: Lloyd iterations.

  Returns:
    float[k, e] centroids.
  """
  m = x.shape[0]
  centroids = [x[rng.integers(m)]]
  d2 = ((x - centroids[0]) ** 2).sum(-1)
  for _ in range(1, k):
    total = d2.sum()
    idx = rng.integers(m) if total <= 0 else rng.choice(m, p=d2 / total)
    centroids.append(x[idx])
    d2 = np.minimum(d2, ((x - x[idx]) ** 2).sum(-1))
  c = np.stack(centroids).astype(np.float64)
  for _ in range(iters):
    dist = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    lab = dist.argmin(1)
    for j in range(k):
      sel = lab == j
      if sel.any():
        c[j] = x[sel].mean(0)
  return c


def balanced_assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
  """Reassigns points to centroids so cluster sizes differ by at most one.

  Greedy over (point, centroid) pairs in increasing Euclidean distance: a point
  joins the nearest centroid that still has room, where every cluster may take
  ``m // c`` points and the first ``m % c`` clusters to fill up may take one
  more (Section 4.3.1, "reassign the users ... one at a time").

  Args:
    x: float[m, e].
    centroids: float[c, e].

  Returns:
    int64[m] labels in [0, c); sizes are ``m // c`` or ``m // c + 1``.
  """
  m, c = x.shape[0], centroids.shape[0]
  dist = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
  order = np.argsort(dist, axis=None, kind="stable")
  base, extra = divmod(m, c)
  labels = np.full(m, -1, np.int64)
  sizes = np.zeros(c, np.int64)
  n_done = 0
  for flat in order:
    i, j = divmod(int(flat), c)
    if labels[i] >= 0:
      continue
    if sizes[j] < base or (sizes[j] == base and extra > 0):
      if sizes[j] == base:
        extra -= 1
      labels[i] = j
      sizes[j] += 1
      n_done += 1
      if n_done == m:
        break
  return labels


def build_tree(user_repr: np.ndarray, depth: int, seed: int = 0,
               kmeans_iters: int = 20) -> ClusterTree:
  """Builds the balanced clustering tree top-down (Section 4.3.1).

  Args:
    user_repr: float[n, e] source-user representations p^B (from MF).
    depth: d; the branching c follows from ``branching_for_depth``.
    seed: seed of the k-means initialisation.
    kmeans_iters: Lloyd iterations per node.

  Returns:
    The ClusterTree; every user sits in exactly one leaf slot.
  """
  x = np.asarray(user_repr, np.float64)
  n = x.shape[0]
  c = branching_for_depth(n, depth)
  rng = np.random.default_rng(seed)
  leaf_user = np.full(c**depth, -1, np.int32)

  def split(idx: np.ndarray, level: int, offset: int) -> None:
    if level == depth:
      assert idx.size <= 1
      if idx.size:
        leaf_user[offset] = idx[0]
      return
    span = c ** (depth - level - 1)
    if idx.size <= c:
      groups = [idx[k:k + 1] for k in range(c)]
    else:
      cent = kmeans(x[idx], c, rng, kmeans_iters)
      lab = balanced_assign(x[idx], cent)
      groups = [idx[lab == k] for k in range(c)]
    for k, g in enumerate(groups):
      if g.size:
        split(g, level + 1, offset + k * span)

  split(np.arange(n), 0, 0)
  return ClusterTree(leaf_user=leaf_user, branching=c, depth=depth, n_users=n)


def subtree_sizes(tree: ClusterTree, level: int) -> np.ndarray:
  """Number of users under each node of ``level`` (0..d); int[c**level]."""
  occupied = (tree.leaf_user >= 0).reshape(tree.branching**level, -1)
  return occupied.sum(-1)


def target_leaf_mask(profiles: jnp.ndarray, leaf_user: jnp.ndarray,
                     item: jnp.ndarray) -> jnp.ndarray:
  """Leaves whose source profile contains the target item (Section 4.3.2).

  Args:
    profiles: int32[U_B, L] source profiles as target-item indices, -1 padded.
    leaf_user: int32[S] user at each leaf slot, -1 if empty.
    item: int32[] target item v*.

  Returns:
    bool[S]; empty slots are False.
  """
  has = (profiles == item).any(-1)
  return (leaf_user >= 0) & has[jnp.maximum(leaf_user, 0)]


def level_masks(leaf_mask: jnp.ndarray, branching: int,
                depth: int) -> tuple[jnp.ndarray, ...]:
  """Reachability of every node from a leaf mask (Section 4.3.2).

  A node is reachable iff some leaf below it is; a masked node is never
  entered by the tree policy, so the policy never reaches a masked leaf.

  Args:
    leaf_mask: bool[c**d].
    branching: c.
    depth: d.

  Returns:
    ``d + 1`` arrays; entry ``l`` is bool[c**l] (entry d is ``leaf_mask``).
  """
  return tuple(
      leaf_mask.reshape(branching**l, -1).any(-1) for l in range(depth)
  ) + (leaf_mask,)
