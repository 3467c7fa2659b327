"""CopyAttack (Fan et al., "Attacking Black-box Recommendations via Copying
Cross-domain User Profiles") in JAX/Flax.

Modules (paper section in brackets):
  data          aligned platforms, rating-5 filter, Table 1       [5.1.1]
  target_model  PinSage-style inductive target recommender         [5.1.3]
  blackbox      query-only interface, fixed-capacity injections   [3, 4.5]
  source_mf     source MF vectors p^B, q^B                         [4.3.1]
  tree          balanced clustering tree and masks                 [4.3.1-4.3.2]
  policy        tree / flat selection policy, GRU state, crafting  [4.3.3, 4.4]
  crafting      window clip around the target item                 [4.4]
  methods       AttackConfig, the Table 2 method rows              [5.1.4]
  attacker_data source profiles by leaf slot, pretend accounts     [4.2]
  episodes      one attack episode (select, craft, inject, query)  [4.2-4.5]
  reinforce     REINFORCE loss: log-probs, returns, entropy        [4.3-4.5]
  training      REINFORCE training loop of the policies            [4.3-4.5]
  attack        train then attack: one method's jitted pieces      [4.2, 4.5]
  ranking       HR/NDCG against sampled negatives                  [5.1.2]
  evaluate      promotion metrics over real target users           [5.1.2]
  config        nested frozen run config (CopyAttackConfig)
  pipeline      run_copyattack: Table 2 / Figures 3-5 experiment   [5]
  plots         Figures 3-5, the detection study's figure
  fake_profiles generated fake-profile attacks (random, bandwagon, ...)
  detection     shilling detectors over implicit profiles, AUC / recall
  detection_study  promotion vs detection of copied and fake profiles
"""
from pfcdr_jax.copyattack.attack import make_attack_fn
from pfcdr_jax.copyattack.attack import train_and_attack
from pfcdr_jax.copyattack.blackbox import BlackBox
from pfcdr_jax.copyattack.blackbox import make_blackbox
from pfcdr_jax.copyattack.config import CopyAttackConfig
from pfcdr_jax.copyattack.crafting import clip_profile
from pfcdr_jax.copyattack.data import align_platforms
from pfcdr_jax.copyattack.methods import AttackConfig
from pfcdr_jax.copyattack.methods import table2_methods
from pfcdr_jax.copyattack.pipeline import run_copyattack
from pfcdr_jax.copyattack.tree import build_tree

__all__ = [
    "AttackConfig", "make_attack_fn", "table2_methods", "train_and_attack",
    "BlackBox", "make_blackbox", "clip_profile", "align_platforms",
    "build_tree", "CopyAttackConfig", "run_copyattack",
]
