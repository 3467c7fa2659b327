"""Sharded == unsharded for inversion (closed form, iterative) and top-k.

The multi-device check runs in a subprocess because the device count of the CPU
backend is fixed when JAX starts
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``).
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.pfcdr import inversion
from pfcdr_jax.pfcdr import sharding
from pfcdr_jax.pfcdr import topk

REPO = Path(__file__).resolve().parents[2]

# B = 10 and C = 7 are not multiples of 4: the padding path is exercised.
_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from pfcdr_jax.pfcdr import inversion
    from pfcdr_jax.pfcdr import sharding
    from pfcdr_jax.pfcdr import topk

    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    N, d, B = 300, 6, 10
    V = jnp.asarray(0.3 * rng.standard_normal((N, d)), jnp.float32)
    w = jnp.asarray(0.5 * rng.standard_normal((B, d)), jnp.float32)
    index = jnp.asarray(rng.permutation(1000)[:B], jnp.int32)
    key = jax.random.PRNGKey(3)
    mesh = sharding.user_mesh()
    out = {"devices": jax.device_count()}
    for method in ("closed_form", "iterative"):
      cfg = inversion.InversionConfig(method=method, steps=40, chunk_size=2)
      a = inversion.invert_users(w, V, key, cfg, user_index=index)
      b = sharding.shard_invert_users(w, V, key, cfg, user_index=index, mesh=mesh)
      out[method] = {
          "proto_err": float(jnp.max(jnp.abs(a.prototypes - b.prototypes))),
          "proto_scale": float(jnp.max(jnp.abs(a.prototypes))),
          "loss_err": float(jnp.max(jnp.abs(a.loss - b.loss))),
          "steps_equal": bool(jnp.all(a.steps == b.steps)),
          "shape": list(b.prototypes.shape), "method": b.method}
    T, C = 200, 7
    W_t = jnp.asarray(rng.standard_normal((T, d)), jnp.float32)
    P_hat = jnp.asarray(rng.standard_normal((C, d)), jnp.float32)
    valid = rng.random(T) < 0.8
    for k in (1, 5, 0.5):
      a = topk.select_neighbors(P_hat, W_t, valid, r=5.0, k=k, chunk_size=3)
      b = sharding.shard_select_neighbors(P_hat, W_t, valid, r=5.0, k=k, chunk_size=3,
                                        mesh=mesh)
      out[f"topk_{k}"] = {"equal": bool(np.array_equal(np.asarray(a), np.asarray(b))),
                          "shape": list(b.shape)}
    for sorted_ in (True, False):   # the threshold kernel, sharded
      a = topk.select_neighbors(P_hat, W_t, valid, r=5.0, k=60, method="threshold",
                              sorted=sorted_)
      b = sharding.shard_select_neighbors(P_hat, W_t, valid, r=5.0, k=60, method="threshold",
                                        sorted=sorted_, mesh=mesh)
      out[f"threshold_sorted_{sorted_}"] = {
          "equal": bool(np.array_equal(np.asarray(a), np.asarray(b))), "shape": list(b.shape)}
    # The host "partition" path, asked for by name, runs unsharded on 4 devices.
    from pfcdr_jax import config as config_lib
    from pfcdr_jax.pfcdr import method as method_lib
    part = method_lib.neighbor_representations(
        P_hat, W_t, valid, 60, config_lib.TopKConfig(method="partition"), 5.0)
    ref = topk.neighbor_mean(topk.select_neighbors(P_hat, W_t, valid, r=5.0, k=60,
                                                   method="top_k"), W_t)
    out["partition_mean_err"] = float(jnp.max(jnp.abs(part - ref)))
    # The whole pipeline: with 4 devices it shards inversion and top-k.
    import tempfile
    from pfcdr_jax.harness import pipeline
    cfg = config_lib.override(config_lib.PFCDRConfig(), json.loads(sys.argv[1]))
    with tempfile.TemporaryDirectory() as tmp:
      res = pipeline.run_pfcdr(cfg, tmp)
    out["pipeline"] = {m: res["methods"][m]["mae"] for m in ("PFCDR", "EMCDR")}
    out["pipeline_k"] = res["selected"]["topk"]
    print("RESULT " + json.dumps(out))
""")


_PIPELINE_CFG = {"data.task": "synthetic", "data.like": "music2movie", "data.scale": 0.004,
                 "split.beta": 0.2, "seed": 0, "pretrain.epochs": 2,
                 "pretrain.batch_size": 256, "pretrain.lrs": [0.02], "inversion.steps": 20,
                 "bridge.epochs": 10, "cache.enabled": False}


@pytest.fixture(scope="module")
def four_device_result():
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                      " --xla_force_host_platform_device_count=4").strip()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(_PIPELINE_CFG)],
                        env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("method", ["closed_form", "iterative"])
def test_sharded_inversion_equals_single_device(four_device_result, method):
  res = four_device_result[method]
  assert four_device_result["devices"] == 4
  assert res["shape"] == [10, 6]
  assert res["method"] == method
  assert res["proto_err"] <= 1e-5 * max(res["proto_scale"], 1e-3)
  assert res["loss_err"] <= 1e-4
  assert res["steps_equal"]


@pytest.mark.parametrize("k", ["1", "5", "0.5"])
def test_sharded_topk_equals_single_device(four_device_result, k):
  res = four_device_result[f"topk_{k}"]
  assert res["equal"]
  assert res["shape"][0] == 7


@pytest.mark.parametrize("sorted_", [True, False])
def test_sharded_threshold_topk_equals_single_device(four_device_result, sorted_):
  r = four_device_result[f"threshold_sorted_{sorted_}"]
  assert r["equal"] and r["shape"] == [7, 60]


def test_partition_method_runs_unsharded_on_four_devices(four_device_result):
  assert four_device_result["partition_mean_err"] <= 1e-6


def test_pipeline_on_four_devices_equals_one_device(four_device_result, tmp_path):
  from pfcdr_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from pfcdr_jax.harness import pipeline  # pylint: disable=g-import-not-at-top
  res = pipeline.run_pfcdr(config_lib.override(config_lib.PFCDRConfig(), _PIPELINE_CFG),
                           tmp_path)
  assert four_device_result["pipeline_k"] == res["selected"]["topk"]
  for m, mae in four_device_result["pipeline"].items():
    assert mae == pytest.approx(res["methods"][m]["mae"], abs=1e-5), m


def test_one_device_mesh_is_the_plain_path():
  rng = np.random.default_rng(1)
  V = jnp.asarray(0.3 * rng.standard_normal((120, 4)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((5, 4)), jnp.float32)
  key = jax.random.PRNGKey(0)
  mesh = sharding.user_mesh(jax.devices()[:1])
  assert mesh.axis_names == ("users",)
  cfg = inversion.InversionConfig(steps=20, chunk_size=2)
  a = inversion.invert_users(w, V, key, cfg)
  b = sharding.shard_invert_users(w, V, key, cfg, mesh=mesh)
  np.testing.assert_allclose(np.asarray(b.prototypes), np.asarray(a.prototypes),
                             rtol=1e-6, atol=1e-7)
  W_t = jnp.asarray(rng.standard_normal((50, 4)), jnp.float32)
  idx_a = topk.select_neighbors(w, W_t, None, r=5.0, k=7)
  idx_b = sharding.shard_select_neighbors(w, W_t, None, r=5.0, k=7, mesh=mesh)
  np.testing.assert_array_equal(np.asarray(idx_a), np.asarray(idx_b))


def test_repeated_calls_do_not_retrace():
  rng = np.random.default_rng(2)
  V = jnp.asarray(0.3 * rng.standard_normal((64, 4)), jnp.float32)
  mesh = sharding.user_mesh(jax.devices()[:1])
  cfg = inversion.InversionConfig(steps=5, chunk_size=4)
  fn = sharding._inversion_fn(mesh, cfg, True)  # pylint: disable=protected-access
  for seed in range(3):
    w = jnp.asarray(rng.standard_normal((8, 4)), jnp.float32)
    sharding.shard_invert_users(w, V, jax.random.PRNGKey(seed), cfg, mesh=mesh)
  assert fn._cache_size() == 1  # pylint: disable=protected-access


def test_bad_shapes_raise():
  mesh = sharding.user_mesh(jax.devices()[:1])
  with pytest.raises(ValueError):
    sharding.shard_invert_users(jnp.zeros((3, 4)), jnp.zeros((10, 5)), jax.random.PRNGKey(0),
                                mesh=mesh)
  with pytest.raises(ValueError):
    sharding.shard_select_neighbors(jnp.zeros((3, 4)), jnp.zeros((10, 4)), np.ones(9, bool),
                                  r=5.0, k=2, mesh=mesh)
  with pytest.raises(ValueError):
    sharding.user_mesh([])
