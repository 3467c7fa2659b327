"""Pretraining with row-sharded tables (models/sharded_tables.py) on 4 forced CPU devices
equals pretraining on one device.

The host is split into 4 devices by ``XLA_FLAGS``, which must be set before JAX starts,
so the check runs in a subprocess: it trains each scorer and optimizer twice, once with
``shard_tables`` and once without, and reports how the tables were laid out and how far
the results are apart. The row counts (61 users, 43 items) are not multiples of 4, so
the zero padding is exercised. The two-process ``jax.distributed`` run of the whole
pipeline with sharded tables is tests/pfcdr/test_multiprocess.py.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    sys.path.insert(0, "tests/models")
    import test_train
    from pfcdr_jax.models import scorers, sharded_tables, train
    assert jax.device_count() == 4, jax.devices()
    dom = test_train._planted(0, 61, 43, 3, 0.5)
    mesh = sharded_tables.table_mesh()
    out = {"layout": {}, "runs": []}
    tree = {"user": jnp.ones((2, 61, 5)), "item": jnp.ones((2, 43, 5)), "mu": jnp.ones(2)}
    placed = sharded_tables.place(tree, mesh)
    for k, x in placed.items():
      out["layout"][k] = {"devices": len(x.sharding.device_set),
                          "shard_shapes": sorted({tuple(s.data.shape)
                                                  for s in x.addressable_shards}),
                          "padded_shape": list(x.shape)}
    back = sharded_tables.unplace(placed, {"user": 61, "item": 43})
    out["roundtrip"] = all(bool(jnp.array_equal(back[k], tree[k])) for k in tree)
    for name in ("mf", "gmf", "dnn"):
      for opt in ("adam", "deferred_adam", "lazy_adam"):
        base = dict(lrs=(0.01, 0.05), epochs=3, batch_size=64, heldout_fraction=0.1,
                    shuffle="host", optimizer=opt)
        sc = scorers.get_scorer(name)
        one = train.train_scorer(sc, dom, train.TrainConfig(**base), jax.random.key(1))
        many = train.train_scorer(sc, dom, train.TrainConfig(shard_tables=True, **base),
                                  jax.random.key(1))
        diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                   for a, b in zip(jax.tree_util.tree_leaves(one.params),
                                   jax.tree_util.tree_leaves(many.params)))
        shapes = [list(np.shape(x)) == list(np.shape(y)) for x, y in
                  zip(jax.tree_util.tree_leaves(one.params),
                      jax.tree_util.tree_leaves(many.params))]
        out["runs"].append({"scorer": name, "optimizer": opt, "param_diff": diff,
                            "same_shapes": all(shapes),
                            "curve_diff": float(np.max(np.abs(one.curve - many.curve))),
                            "lr": [one.lr, many.lr], "epoch": [one.epoch, many.epoch],
                            "moved": float(np.max(np.abs(np.asarray(one.params["user"])))) })
    print("RESULT " + json.dumps(out), flush=True)
""")


@pytest.fixture(scope="module")
def four_devices():
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=4").strip(),
             PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
  done = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=REPO, text=True,
                        capture_output=True, timeout=600, check=False)
  assert done.returncode == 0, done.stderr[-4000:]
  line = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


def test_tables_are_sharded_by_rows_and_padded(four_devices):
  lay = four_devices["layout"]
  assert lay["user"] == {"devices": 4, "shard_shapes": [[2, 16, 5]], "padded_shape": [2, 64, 5]}
  assert lay["item"] == {"devices": 4, "shard_shapes": [[2, 11, 5]], "padded_shape": [2, 44, 5]}
  assert lay["mu"]["devices"] == 4 and lay["mu"]["shard_shapes"] == [[2]]   # replicated
  assert four_devices["roundtrip"]


def test_sharded_pretraining_equals_one_device(four_devices):
  runs = four_devices["runs"]
  assert len(runs) == 9
  for r in runs:
    assert r["moved"] > 0.5, r     # the tables trained (init: EMB_STD-scaled normal)
    assert r["same_shapes"], r     # padded rows dropped again
    assert r["lr"][0] == r["lr"][1] and r["epoch"][0] == r["epoch"][1], r
    assert r["curve_diff"] < 1e-5, r
    assert r["param_diff"] < 1e-4, r
