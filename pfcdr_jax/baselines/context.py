"""What a baseline may read: the split and the shared pretrained base models."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from pfcdr_jax.config import BridgeConfig, TopKConfig
from pfcdr_jax.data.splits import CDRData
from pfcdr_jax.pfcdr.inversion import InversionConfig


@dataclasses.dataclass(frozen=True, eq=False)
class BaselineContext:
  """Inputs shared by every baseline of one run (one task, beta, seed, base model).

  Attributes:
    data: the split (source, target_train, target_val, target_test, user sets).
    scorer: the base model (`pfcdr_jax.models.scorers.Scorer`), shared with PFCDR
      ("baselines and PFCDR share the parameters of source and target models",
      paper Sec. 5.1).
    params_s, params_t: pretrained source / target params of `scorer`.
    key: PRNG key reserved for baselines (the registry folds in each method's name).
    seed: the run's seed.
    emcdr_key: EMCDR's own stage key (``method.StageKeys.emcdr``).
    bridge: the run's ``config.BridgeConfig`` (EMCDR's map trains like the bridge).
    inversion, topk: the run's inversion and top-k settings (PFCDR-DP reruns PFCDR).
  """
  data: CDRData
  scorer: Any
  params_s: Any
  params_t: Any
  key: jax.Array
  seed: int
  emcdr_key: jax.Array | None = None
  bridge: BridgeConfig = BridgeConfig()
  inversion: InversionConfig = InversionConfig()
  topk: TopKConfig = TopKConfig()
