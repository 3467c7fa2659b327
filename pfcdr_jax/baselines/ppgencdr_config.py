"""PPGenCDR's settings: one frozen dataclass, read by the source generator
(``ppgencdr_generator``) and by the target model and ``fit_predict`` (``ppgencdr``)."""
from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class PPGenCDRConfig:
  """PPGenCDR settings.

  Attributes:
    epsilon: user-level privacy budget of the whole generator training; None: no noise.
    delta: DP failure probability.
    clip_norm: per-user L2 clip ``C`` of a step's generator gradient.
    gen_dim: size ``k`` of the generator's per-user code.
    gen_hidden: hidden units ``H`` of the generator.
    gen_steps: full-batch DP-SGD steps ``T``.
    gen_lr: Adam learning rate of the generator.
    gen_weight_decay: AdamW decoupled weight decay of the generator (data-independent,
      so free of privacy cost).
    init_scale: std of the initial codes.
    rating_range: the public rating scale ``(lo, hi)`` that normalises ratings to [0, 1].
    enc_hidden: hidden units of the target-side encoder.
    lr: Adam learning rate of the target model.
    epochs: passes over the bridge users' target ratings.
    batch_size: ratings per target step.
    transfer_weight, align_weight, recon_weight: loss weights (``ppgencdr``
      module docstring).
  """
  epsilon: Optional[float] = 1.0
  delta: float = 1e-5
  clip_norm: float = 0.1
  gen_dim: int = 10
  gen_hidden: int = 64
  gen_steps: int = 200
  gen_lr: float = 0.02
  gen_weight_decay: float = 0.0
  init_scale: float = 0.1
  rating_range: tuple[float, float] = (1.0, 5.0)
  enc_hidden: int = 64
  lr: float = 0.005
  epochs: int = 10
  batch_size: int = 512
  transfer_weight: float = 1.0
  align_weight: float = 0.1
  recon_weight: float = 1.0
