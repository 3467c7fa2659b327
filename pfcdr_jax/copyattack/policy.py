"""Policy networks of CopyAttack: tree policy, flat policy, crafting MLP, GRU state.

Section 4.3.3 (hierarchical-structure policy gradient): one MLP per non-leaf node
maps the state ``[q_v* (+) x_v*]`` to a softmax over the node's children,
``x_v* = RNN(selected users)`` (a GRU over their MF vectors p^B); the probability
of a leaf is the product along its root-to-leaf path. The MLPs of one level are
stored as a single pytree with a leading node axis and gathered by node index,
so the number of nodes never becomes Python structure.

Section 4.4: the crafting MLP maps ``[p_i (+) q_v*]`` to a softmax over the 10
window sizes. ``PolicyNetwork`` (Table 2 baseline) replaces the tree by one MLP
over all leaf slots.

All functions act on one state (one example); callers vmap.
"""
from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from pfcdr_jax.copyattack import crafting

_INIT_STD = 0.1  # Section 5.1.3: Gaussian(0, 0.1) initialisation.


class MLP(nn.Module):
  """Two-layer perceptron ``Dense(hidden) -> ReLU -> Dense(out)``."""

  hidden: int
  out: int

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(self.hidden)(x))
    return nn.Dense(self.out)(x)


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
  """Static shape of the policy.

  Attributes:
    emb_dim: e, dimension of p^B and q^B (also the GRU width).
    hidden: hidden width of every MLP.
    branching: c of the clustering tree.
    depth: d of the clustering tree.
    selector: "tree" (CopyAttack), "flat" (PolicyNetwork) or "random".
  """

  emb_dim: int
  hidden: int
  branching: int
  depth: int
  selector: str = "tree"

  @property
  def n_slots(self) -> int:
    return self.branching**self.depth


def _gru(cfg: PolicyConfig) -> nn.GRUCell:
  return nn.GRUCell(features=cfg.emb_dim)


def _gaussian_params(key: jax.Array, shapes, lead: tuple = ()):
  """Samples a pytree shaped like ``shapes`` from Gaussian(0, 0.1).

  Section 5.1.3 initialises every parameter (weights and biases) this way.
  ``lead`` prepends axes, e.g. ``(c**l,)`` to stack the MLPs of one level.
  """
  leaves, treedef = jax.tree.flatten(shapes)
  shapes = [lead + leaf.shape for leaf in leaves]
  sizes = [math.prod(sh) for sh in shapes]
  # One draw for the whole pytree: a single RNG op compiles once.
  flat = _INIT_STD * jax.random.normal(key, (sum(sizes),), jnp.float32)
  out, start = [], 0
  for sh, n in zip(shapes, sizes):
    out.append(flat[start:start + n].reshape(sh))
    start += n
  return treedef.unflatten(out)


def init_policy(key: jax.Array, cfg: PolicyConfig) -> dict:
  """Initialises all policy parameters from Gaussian(0, 0.1).

  Shapes come from ``jax.eval_shape`` of the flax modules' ``init`` (no
  compute), the values from one Gaussian draw per leaf.

  Args:
    key: PRNG key.
    cfg: static configuration.

  Returns:
    Params dict with keys "gru", "craft" and, by selector, "tree" (a tuple of
    per-level stacked MLP params, level ``l`` with leading axis ``c**l``) or
    "flat".
  """
  e, c, d = cfg.emb_dim, cfg.branching, cfg.depth
  k_gru, k_craft, k_sel = jax.random.split(key, 3)
  state_in = jnp.zeros((2 * e,), jnp.float32)
  vec = jnp.zeros((e,), jnp.float32)
  shape_of = lambda module, *args: jax.eval_shape(module.init,
                                                  jax.random.key(0), *args)
  params = {
      "gru": _gaussian_params(k_gru, shape_of(_gru(cfg), vec, vec)),
      "craft": _gaussian_params(
          k_craft, shape_of(MLP(cfg.hidden, crafting.N_LEVELS), state_in)),
  }
  if cfg.selector == "tree":
    node = shape_of(MLP(cfg.hidden, c), state_in)
    level_keys = jax.random.split(k_sel, d)
    params["tree"] = tuple(
        _gaussian_params(level_keys[l], node, (c**l,)) for l in range(d))
  elif cfg.selector == "flat":
    params["flat"] = _gaussian_params(
        k_sel, shape_of(MLP(cfg.hidden, cfg.n_slots), state_in))
  return params


def gru_step(params: dict, cfg: PolicyConfig, h: jnp.ndarray,
             p_user: jnp.ndarray) -> jnp.ndarray:
  """One GRU update with a selected user's vector: ``x <- RNN(x, p_u)``.

  Args:
    params: policy params.
    cfg: config.
    h: float[e] summary of users selected so far.
    p_user: float[e] p^B of the newly selected user.

  Returns:
    float[e].
  """
  h_new, _ = _gru(cfg).apply(params["gru"], h, p_user)
  return h_new


def masked_log_softmax(logits: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """log-softmax over the entries where ``mask`` is True; -inf elsewhere.

  Masked logits are replaced by a large finite negative before the softmax so
  that a fully masked row gives -inf everywhere without NaN gradients.
  """
  safe = jnp.where(mask, logits, -1e30)
  return jnp.where(mask, jax.nn.log_softmax(safe), -jnp.inf)


def _path_digits(leaf: jnp.ndarray, c: int, d: int) -> tuple[list, list]:
  """Node index at each level and the child digit taken there."""
  nodes = [leaf // c ** (d - l) for l in range(d)]
  digits = [(leaf // c ** (d - l - 1)) % c for l in range(d)]
  return nodes, digits


def _node_logits(level_params, node, state, cfg: PolicyConfig):
  node_params = jax.tree.map(lambda a: a[node], level_params)
  return MLP(cfg.hidden, cfg.branching).apply(node_params, state)


def tree_log_prob(params: dict, cfg: PolicyConfig, state: jnp.ndarray,
                  leaf: jnp.ndarray, masks: tuple) -> jnp.ndarray:
  """log p(a^u | s) summed along the root-to-leaf path (Section 4.3.3).

  Args:
    params: policy params with "tree".
    cfg: config.
    state: float[2e] the state ``[q_v* (+) x_v*]``.
    leaf: int32[] leaf slot (the path in base c).
    masks: output of ``tree.level_masks`` (``d + 1`` bool arrays).

  Returns:
    float[] log-probability (-inf if the path enters a masked node).
  """
  c, d = cfg.branching, cfg.depth
  nodes, digits = _path_digits(leaf, c, d)
  total = jnp.zeros((), jnp.float32)
  for l in range(d):
    logits = _node_logits(params["tree"][l], nodes[l], state, cfg)
    child_mask = jax.lax.dynamic_slice(masks[l + 1], (nodes[l] * c,), (c,))
    total = total + masked_log_softmax(logits, child_mask)[digits[l]]
  return total


def masked_entropy(logp: jnp.ndarray) -> jnp.ndarray:
  """Entropy of a distribution given as (masked, -inf) log-probabilities."""
  finite = jnp.isfinite(logp)
  safe = jnp.where(finite, logp, 0.0)
  return -jnp.where(finite, jnp.exp(safe) * safe, 0.0).sum(-1)


def tree_path_entropy(params: dict, cfg: PolicyConfig, state: jnp.ndarray,
                      leaf: jnp.ndarray, masks: tuple) -> jnp.ndarray:
  """Sum of the node distributions' entropies along the path to ``leaf``.

  The entropy bonus of a tree step: each node's choice is a softmax over its
  (unmasked) children; the nodes are those the step passed through.

  Returns:
    float[].
  """
  c, d = cfg.branching, cfg.depth
  nodes, _ = _path_digits(leaf, c, d)
  total = jnp.zeros((), jnp.float32)
  for l in range(d):
    logits = _node_logits(params["tree"][l], nodes[l], state, cfg)
    child_mask = jax.lax.dynamic_slice(masks[l + 1], (nodes[l] * c,), (c,))
    total = total + masked_entropy(masked_log_softmax(logits, child_mask))
  return total


def tree_sample(params: dict, cfg: PolicyConfig, state: jnp.ndarray,
                masks: tuple, key: jax.Array,
                greedy: bool = False) -> jnp.ndarray:
  """Samples a root-to-leaf path, never entering a masked node (Sec. 4.3.3).

  Args:
    params: policy params with "tree".
    cfg: config.
    state: float[2e].
    masks: ``tree.level_masks`` output; the root must be reachable.
    key: PRNG key.
    greedy: take the most probable child instead of sampling.

  Returns:
    int32[] leaf slot.
  """
  c = cfg.branching
  node = jnp.zeros((), jnp.int32)
  keys = jax.random.split(key, cfg.depth)
  for l in range(cfg.depth):
    logits = _node_logits(params["tree"][l], node, state, cfg)
    child_mask = jax.lax.dynamic_slice(masks[l + 1], (node * c,), (c,))
    logp = masked_log_softmax(logits, child_mask)
    child = (jnp.argmax(logp) if greedy
             else jax.random.categorical(keys[l], logp))
    node = node * c + child.astype(jnp.int32)
  return node


def flat_log_probs(params: dict, cfg: PolicyConfig, state: jnp.ndarray,
                   leaf_mask: jnp.ndarray) -> jnp.ndarray:
  """PolicyNetwork baseline: one softmax over all leaf slots.

  Args:
    params: policy params with "flat".
    cfg: config.
    state: float[2e].
    leaf_mask: bool[S] available leaves.

  Returns:
    float[S] masked log-probabilities.
  """
  logits = MLP(cfg.hidden, cfg.n_slots).apply(params["flat"], state)
  return masked_log_softmax(logits, leaf_mask)


def craft_log_probs(params: dict, cfg: PolicyConfig, p_user: jnp.ndarray,
                    q_item: jnp.ndarray) -> jnp.ndarray:
  """Crafting policy ``softmax(MLP([p_i (+) q_v*]))`` over W (Section 4.4).

  Args:
    params: policy params.
    cfg: config.
    p_user: float[e].
    q_item: float[e].

  Returns:
    float[10] log-probabilities of keeping 10%, ..., 100%.
  """
  x = jnp.concatenate([p_user, q_item])
  logits = MLP(cfg.hidden, crafting.N_LEVELS).apply(params["craft"], x)
  return jax.nn.log_softmax(logits)
