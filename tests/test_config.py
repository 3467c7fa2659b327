"""Tests of the nested configs and of the cache keys derived from them."""

import json

import numpy as np
import pytest

from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import cache_keys
from pfcdr_jax.pfcdr import topk as topk_lib


def test_override_sets_nested_fields_and_rejects_unknown_paths():
  cfg = config_lib.override(config_lib.PFCDRConfig(), {"pretrain.epochs": 3, "seed": 2,
                                                       "pretrain.lrs": [0.1]})
  assert cfg.pretrain.epochs == 3 and cfg.seed == 2 and cfg.pretrain.lrs == (0.1,)
  assert cfg.bridge == config_lib.BridgeConfig()   # untouched sub-configs stay default
  with pytest.raises(ValueError, match="no field"):
    config_lib.override(cfg, {"pretrain.epoch": 3})
  with pytest.raises(ValueError, match="no field"):
    config_lib.override(cfg, {"pretrian.epochs": 3})


def test_dict_round_trip_through_json():
  cfg = config_lib.override(config_lib.PFCDRConfig(), {
      "data.task": "custom", "inversion.eps": 0.1, "baselines.names": ("TGT", "CMF"),
      "topk.grid": (0.1, 0.5)})
  back = config_lib.from_dict(config_lib.PFCDRConfig,
                              json.loads(json.dumps(config_lib.to_dict(cfg))))
  assert back == cfg
  with pytest.raises(ValueError, match="unknown"):
    config_lib.from_dict(config_lib.PFCDRConfig, {"bridge": {"momentum": 1}})


def test_content_leaves_out_execution_only_fields():
  a = config_lib.PFCDRConfig()
  b = config_lib.override(a, {"topk.method": "threshold", "topk.chunk": 8,
                              "cache.dir": "/x", "data.data_dir": "/y"})
  assert config_lib.content(a) == config_lib.content(b)
  assert "chunk" not in config_lib.content(a)["topk"]
  c = config_lib.override(a, {"topk.include_untrained": True})
  assert config_lib.content(a) != config_lib.content(c)


def test_cache_keys_follow_what_each_stage_reads():
  base = config_lib.PFCDRConfig()
  keys = lambda cfg: (cache_keys.pretrain_cache_key(cfg, "h", "source"),
                      cache_keys.prototype_cache_key(cfg, "h", "source"),
                      cache_keys.baseline_cache_key(cfg, "h", "CMF"),
                      cache_keys.baseline_cache_key(cfg, "h", "EMCDR"))
  k0 = keys(base)
  assert len(set(k0)) == 4
  # Pretraining feeds everything downstream.
  assert all(a != b for a, b in zip(k0, keys(config_lib.override(base, {"pretrain.epochs": 3}))))
  # The inversion feeds only the prototypes.
  k = keys(config_lib.override(base, {"inversion.steps": 10}))
  assert (k[0], k[2], k[3]) == (k0[0], k0[2], k0[3]) and k[1] != k0[1]
  # The bridge feeds PFCDR (not cached) and EMCDR's map, nothing else.
  k = keys(config_lib.override(base, {"bridge.epochs": 10}))
  assert k[:3] == k0[:3] and k[3] != k0[3]
  # Execution-only fields change no key; the seed changes every key.
  assert keys(config_lib.override(base, {"topk.chunk": 4, "cache.dir": "/c"})) == k0
  assert all(a != b for a, b in zip(k0, keys(config_lib.override(base, {"seed": 1}))))


@pytest.mark.parametrize("field, value, match", [
    ("topk.method", "argpartition", "topk.method = 'argpartition': expected one of auto"),
    ("topk.chunk", 0, "topk.chunk = 0: expected None or an integer >= 1"),
    ("topk.chunk", True, "topk.chunk = True: expected None or an integer >= 1"),
])
def test_topk_config_rejects_bad_execution_settings_before_any_work(field, value, match):
  with pytest.raises(ValueError, match=match):
    config_lib.override(config_lib.PFCDRConfig(), {field: value})
  for method in topk_lib.METHODS:                     # every kernel is accepted
    assert config_lib.TopKConfig(method=method, chunk=np.int64(4)).method == method
