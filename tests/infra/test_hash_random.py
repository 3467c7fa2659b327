"""hash_random: the counter-based normal draw of the inversion's b0 (``b0_draw="hash"``).

Checked against numpy: the hash against a numpy uint32 re-implementation; the
draws' distribution (moments, Kolmogorov-Smirnov against N(0, 1)), their lag-1
and cross-key correlations and the uniformity of the bit stream's bytes.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from pfcdr_jax.infra import hash_random
from pfcdr_jax.pfcdr import inversion
from pfcdr_jax.pfcdr import inversion_objective


def _np_lowbias32(x):
  x = x ^ (x >> np.uint32(16))
  x = x * np.uint32(0x7FEB352D)
  x = x ^ (x >> np.uint32(15))
  x = x * np.uint32(0x846CA68B)
  return x ^ (x >> np.uint32(16))


def test_bits_match_a_numpy_reference():
  key = jax.random.key(3)
  k0, k1 = np.asarray(jax.random.key_data(key))
  j = np.arange(1000, dtype=np.uint32)
  with np.errstate(over="ignore"):
    want = _np_lowbias32(_np_lowbias32(j * np.uint32(0x9E3779B9) + k0) ^ k1)
  np.testing.assert_array_equal(np.asarray(hash_random.bits(key, 1000)), want)
  # a raw uint32[2] key gives the same bits
  np.testing.assert_array_equal(np.asarray(hash_random.bits(jax.random.key_data(key), 1000)),
                                want)


def test_normal_is_standard_normal():
  z = np.asarray(hash_random.normal(jax.random.key(0), 200_000), np.float64)
  assert abs(z.mean()) < 0.01 and abs(z.var() - 1.0) < 0.01
  assert abs(stats.skew(z)) < 0.02 and abs(stats.kurtosis(z)) < 0.05
  assert stats.kstest(z, "norm").pvalue > 1e-3
  assert np.isfinite(z).all() and np.abs(z).max() < 6.0


def test_draws_are_uncorrelated_along_and_across_keys():
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(1), i))(jnp.arange(64))
  z = np.asarray(jax.vmap(lambda k: hash_random.normal(k, 20_000))(keys), np.float64)
  n = z.shape[1]
  lag1 = np.mean([np.corrcoef(r[:-1], r[1:])[0, 1] for r in z])
  assert abs(lag1) < 4 / np.sqrt(n * 64)
  c = np.corrcoef(z)[np.triu_indices(64, 1)]           # adjacent users' keys
  assert np.abs(c).max() < 5 / np.sqrt(n)
  assert not np.array_equal(z[0], z[1])


def test_bytes_are_uniform():
  b = np.asarray(hash_random.bits(jax.random.key(7), 65_536)).view(np.uint8)
  counts = np.bincount(b, minlength=256)
  assert stats.chisquare(counts).pvalue > 1e-3


def test_bad_key_is_a_clear_error():
  with pytest.raises(ValueError, match="threefry key"):
    hash_random.bits(jnp.zeros((3,), jnp.uint32), 4)


def test_hash_b0_keeps_the_closed_form_equal_to_the_iterative_run():
  rng = np.random.default_rng(0)
  V = jnp.asarray(rng.normal(size=(300, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
  key = jax.random.key(5)
  cfgs = {m: inversion.InversionConfig(method=m, b0_draw="hash", steps=50)
          for m in ("iterative", "closed_form")}
  it, cf = (inversion.invert_user(w, V, key, cfgs[m]) for m in ("iterative", "closed_form"))
  np.testing.assert_allclose(np.asarray(cf.prototype), np.asarray(it.prototype),
                             rtol=1e-4, atol=1e-6)
  b0 = inversion_objective.init_weights(key, 300, "hash")
  assert float(jnp.sum(b0)) == pytest.approx(1.0, rel=1e-5)
  np.testing.assert_array_equal(np.asarray(b0),
                                np.asarray(inversion_objective.init_weights(key, 300)))
  assert not np.allclose(np.asarray(b0),
                         np.asarray(inversion_objective.init_weights(key, 300, "threefry")))
  with pytest.raises(ValueError, match="b0_draw"):
    inversion.InversionConfig(b0_draw="pcg")
