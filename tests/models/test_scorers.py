"""Scorers vs plain numpy references; metrics vs numpy."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from pfcdr_jax.models import metrics
from pfcdr_jax.models import scorers


NAMES = ("mf", "gmf", "dnn", "dnn_mlp")


def _scorer(name):
  """"dnn_mlp" = YouTube-DNN with the deeper tower (``dnn_tower="mlp"``)."""
  if name == "dnn_mlp":
    return scorers.get_scorer("dnn", dnn_tower="mlp")
  return scorers.get_scorer(name)


def _np_user_repr(name, p, users):
  U = np.asarray(p["user"])[users]
  if name == "mf":
    return U
  if name == "gmf":
    return U * np.asarray(p["h"])
  t = {k: np.asarray(v) for k, v in p["tower"].items()}
  if name == "dnn":   # the public code's tower: one Linear d -> d with a bias
    return U @ t["w"] + t["b"]
  return np.maximum(U @ t["w1"] + t["b1"], 0.0) @ t["w2"] + t["b2"]


def _perturbed(name, key):
  """Init params, then perturb GMF's h and the tower biases so they matter."""
  p = _scorer(name).init(key, 7, 11, 4)
  if name == "gmf":
    p["h"] = p["h"] + jnp.linspace(-0.5, 0.5, 4)
  if name == "dnn":
    p["tower"]["b"] = p["tower"]["b"] + 0.05
  if name == "dnn_mlp":
    p["tower"]["b1"] = p["tower"]["b1"] + 0.05
    p["tower"]["b2"] = p["tower"]["b2"] - 0.1
  return p


class ScorerTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*NAMES)
  def test_predict_matches_numpy(self, name):
    sc = _scorer(name)
    p = _perturbed(name, jax.random.key(0))
    users = np.array([0, 3, 6, 2, 3], np.int32)
    items = np.array([1, 10, 0, 5, 5], np.int32)
    pred = self.variant(sc.predict)(p, users, items)
    ref = np.sum(_np_user_repr(name, p, users) * np.asarray(p["item"])[items], axis=1)
    np.testing.assert_allclose(np.asarray(pred), ref, rtol=1e-5, atol=1e-6)
    if name == "gmf":  # NCF GMF form h . (U_u * V_j)
      ref2 = (np.asarray(p["user"])[users] * np.asarray(p["item"])[items]) @ np.asarray(p["h"])
      np.testing.assert_allclose(np.asarray(pred), ref2, rtol=1e-5, atol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*NAMES)
  def test_predict_soft_is_linear_in_b(self, name):
    sc = _scorer(name)
    self.assertTrue(sc.linear_in_b)
    p = _perturbed(name, jax.random.key(1))
    users = np.array([0, 4], np.int32)
    b = np.random.default_rng(0).dirichlet(np.ones(11), size=2).astype(np.float32)
    soft = self.variant(sc.predict_soft)(p, users, jnp.asarray(b) @ sc.item_matrix(p))
    all_items = np.stack([np.asarray(sc.predict(p, np.full(11, u, np.int32),
                                                np.arange(11, dtype=np.int32)))
                          for u in users])                       # [2, N]
    np.testing.assert_allclose(np.asarray(soft), np.sum(b * all_items, axis=1),
                               rtol=1e-5, atol=1e-6)

  @parameterized.parameters(*NAMES)
  def test_init_shapes_and_scale(self, name):
    p = _scorer(name).init(jax.random.key(2), 500, 300, 10)
    self.assertEqual(p["user"].shape, (500, 10))
    self.assertEqual(p["item"].shape, (300, 10))
    self.assertAlmostEqual(float(jnp.std(p["user"])), 0.1, delta=0.01)

  def test_unknown_scorer(self):
    with self.assertRaises(ValueError):
      scorers.get_scorer("lightgcn")
    with self.assertRaises(ValueError):
      scorers.get_scorer("dnn", dnn_tower="transformer")

  def test_dnn_tower_default_is_one_linear_and_mlp_is_a_flag(self):
    linear = scorers.get_scorer("dnn").init(jax.random.key(3), 5, 6, 10)["tower"]
    self.assertEqual({k: v.shape for k, v in linear.items()}, {"w": (10, 10), "b": (10,)})
    mlp = scorers.get_scorer("dnn", dnn_tower="mlp").init(jax.random.key(3), 5, 6, 10)
    self.assertEqual(mlp["tower"]["w1"].shape, (10, 20))
    # The tower option only concerns the DNN.
    self.assertIs(scorers.get_scorer("mf", dnn_tower="mlp"), scorers.get_scorer("mf"))


def test_metrics_match_numpy():
  rng = np.random.default_rng(0)
  pred, y = rng.normal(size=50), rng.normal(size=50)
  assert np.isclose(metrics.mae(pred, y), np.mean(np.abs(pred - y)))
  assert np.isclose(metrics.rmse(pred, y), np.sqrt(np.mean((pred - y) ** 2)))
  jm = metrics.mae(jnp.asarray(pred, jnp.float32), jnp.asarray(y, jnp.float32))
  jr = metrics.rmse(jnp.asarray(pred, jnp.float32), jnp.asarray(y, jnp.float32))
  assert isinstance(jm, jax.Array)
  np.testing.assert_allclose(float(jm), np.mean(np.abs(pred - y)), rtol=1e-5)
  np.testing.assert_allclose(float(jr), np.sqrt(np.mean((pred - y) ** 2)), rtol=1e-5)
  with pytest.raises(ValueError):
    metrics.mae(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("name", ["mf", "gmf", "dnn"])
@pytest.mark.parametrize("offsets", ["global", "bias"])
def test_offsets_add_mu_and_biases_as_columns_of_the_same_product(name, offsets):
  """pred = core . v + mu (+ b_u + c_j), and still user_repr(u) . item_matrix[j]."""
  sc, bare = scorers.get_scorer(name, offsets=offsets), scorers.get_scorer(name)
  p = sc.init(jax.random.key(1), 7, 11, 4)
  p["mu"] = jnp.asarray(3.6)
  if offsets == "bias":
    p["user_bias"] = jnp.linspace(-0.5, 0.5, 7)
    p["item_bias"] = jnp.linspace(0.3, -0.3, 11)
  users = np.array([0, 3, 6, 2], np.int32)
  items = np.array([1, 10, 0, 5], np.int32)
  core = {k: v for k, v in p.items() if k not in ("mu", "user_bias", "item_bias")}
  ref = np.asarray(bare.predict(core, users, items)) + 3.6
  if offsets == "bias":
    ref = ref + np.asarray(p["user_bias"])[users] + np.asarray(p["item_bias"])[items]
  np.testing.assert_allclose(np.asarray(sc.predict(p, users, items)), ref, rtol=1e-5)
  W, V = sc.user_repr(p, jnp.asarray(users)), sc.item_matrix(p)
  assert W.shape[1] == V.shape[1] == scorers.repr_dim(4, offsets)
  np.testing.assert_allclose(np.sum(np.asarray(W) * np.asarray(V)[items], 1), ref, rtol=1e-5)
  assert sc.linear_in_b and sc.offsets == offsets


def test_get_scorer_rejects_unknown_offsets():
  with pytest.raises(ValueError, match="offsets"):
    scorers.get_scorer("mf", offsets="centered")


@pytest.mark.parametrize("n_rows,dim", [(6040, 10), (3706, 10), (1, 1), (123, 7), (0, 10),
                                        (70_000, 10)])
def test_normal_table_is_the_table_drawn_in_its_own_shape(n_rows, dim):
  # The shared power-of-two draw must give the tables of the eager draw bit for bit:
  # every committed result starts from them.
  for key in (jax.random.PRNGKey(0), jax.random.PRNGKey(7), jax.random.key(3)):
    got = scorers.normal_table(key, n_rows, dim)
    want = scorers.EMB_STD * jax.random.normal(key, (n_rows, dim), jnp.float32)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_normal_table_under_a_trace_is_the_traced_draw():
  key = jax.random.PRNGKey(1)
  got = jax.jit(lambda k: scorers.normal_table(k, 50, 10))(key)
  want = jax.jit(lambda k: scorers.EMB_STD * jax.random.normal(k, (50, 10)))(key)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
