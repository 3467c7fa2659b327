"""Two JAX processes on 127.0.0.1 (``jax.distributed``, CPU, gloo) give one process's results.

Each process has 2 CPU devices (4 in all). Both run the sharded inversion and top-k on
the same inputs, and ``run_pfcdr`` on a tiny synthetic task with its pretraining tables
sharded by rows over the 4 devices (``pretrain.shard_tables``); process 0 writes the
outputs. The test compares them with the single-device kernels and a one-process run.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import inversion
from pfcdr_jax.harness import pipeline
from pfcdr_jax.pfcdr import topk

REPO = Path(__file__).resolve().parents[2]

_CFG = {"data.task": "synthetic", "data.like": "music2movie", "data.scale": 0.004,
        "split.beta": 0.2, "seed": 0, "pretrain.epochs": 2, "pretrain.batch_size": 256,
        "pretrain.lrs": [0.02], "inversion.steps": 20, "bridge.epochs": 10, "topk.k": "7",
        # Tables sharded by rows over the 4 devices of both processes (one device here).
        "pretrain.shard_tables": True}

_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    pid, port, workdir, cfg_json = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=pid)
    import jax.numpy as jnp, numpy as np
    from pfcdr_jax import config as config_lib
    from pfcdr_jax.pfcdr import inversion
    from pfcdr_jax.harness import pipeline
    from pfcdr_jax.pfcdr import sharding
    assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    V = 0.3 * rng.standard_normal((300, 6)).astype(np.float32)
    w = 0.5 * rng.standard_normal((10, 6)).astype(np.float32)
    cfg = inversion.InversionConfig(method="closed_form", chunk_size=2)
    protos = sharding.shard_invert_users(w, V, jax.random.PRNGKey(3), cfg).prototypes
    W_t = rng.standard_normal((200, 6)).astype(np.float32)
    P_hat = rng.standard_normal((7, 6)).astype(np.float32)
    idx = sharding.shard_select_neighbors(P_hat, W_t, rng.random(200) < 0.8, r=5.0, k=5)
    res = pipeline.run_pfcdr(config_lib.override(config_lib.PFCDRConfig(),
                                                 json.loads(cfg_json)), workdir)
    print("RESULT " + json.dumps({"protos": np.asarray(protos).tolist(),
                                  "idx": np.asarray(idx).tolist(),
                                  "methods": res["methods"],
                                  "k": res["selected"]["topk"]}), flush=True)
""")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("mp") / "run"
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=2").strip(),
             PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
  port = str(_free_port())
  procs = [subprocess.Popen([sys.executable, "-c", _SCRIPT, str(i), port, str(workdir),
                             json.dumps(_CFG)], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
           for i in range(2)]
  outs = []
  for p in procs:
    try:
      out, err = p.communicate(timeout=420)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
    assert p.returncode == 0, err[-4000:]
    line = [l for l in out.splitlines() if l.startswith("RESULT ")][-1]
    outs.append(json.loads(line[len("RESULT "):]))
  return outs, workdir


def test_sharded_kernels_across_two_processes_equal_one_device(two_processes):
  outs, _ = two_processes
  rng = np.random.default_rng(0)
  V = 0.3 * rng.standard_normal((300, 6)).astype(np.float32)
  w = 0.5 * rng.standard_normal((10, 6)).astype(np.float32)
  import jax  # pylint: disable=import-outside-toplevel
  want = inversion.invert_users(w, V, jax.random.PRNGKey(3),
                                inversion.InversionConfig(method="closed_form",
                                                          chunk_size=2)).prototypes
  W_t = rng.standard_normal((200, 6)).astype(np.float32)
  P_hat = rng.standard_normal((7, 6)).astype(np.float32)
  idx = topk.select_neighbors(P_hat, W_t, rng.random(200) < 0.8, r=5.0, k=5)
  for out in outs:   # every process holds the whole, gathered result
    np.testing.assert_allclose(np.asarray(out["protos"]), np.asarray(want), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(np.asarray(out["idx"]), np.asarray(idx))


def test_run_pfcdr_across_two_processes_equals_one_process(two_processes, tmp_path):
  outs, workdir = two_processes
  one = pipeline.run_pfcdr(config_lib.override(config_lib.PFCDRConfig(), _CFG), tmp_path)
  written = json.loads((workdir / "results.json").read_text())
  for out in outs:
    assert out["k"] == one["selected"]["topk"]
    for m, v in one["methods"].items():
      assert out["methods"][m]["mae"] == pytest.approx(v["mae"], abs=1e-5), m
  assert written["methods"] == outs[0]["methods"], "process 0 writes the outputs"
  assert not list(workdir.glob(".staging*")), "no process leaves its staging folder"
  assert not (workdir / "cache").exists(), "multi-process runs keep no stage cache"
