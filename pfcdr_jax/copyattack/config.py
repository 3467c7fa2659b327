"""Configuration of one CopyAttack run: nested frozen dataclasses, one per stage.

``CopyAttackConfig`` composes the stage configs; each stage of
``pipeline.run_copyattack`` reads only its own sub-config:

  data        platforms to load and the target items v* to attack  [5.1.1, 5.1.3]
  target      the PinSage-style target model behind the black box  [5.1.3]
  mf          source MF vectors p^B, q^B                           [4.3.1]
  tree        clustering tree                                      [4.3.1]
  pretend     the attacker's pretend accounts U*^A                 [4.2]
  attack      the base attack: budget, queries, policy and REINFORCE
              hyper-parameters; the Table 2 rows are variants of it [4.2-4.5]
  evaluation  promotion metrics over real target users              [5.1.2]
  analysis    Figures 3-5 or the detection study instead of Table 2 [5.3]

``attack`` stays one flat ``methods.AttackConfig``: a Table 2 method *is* one
such config (``methods.table2_methods`` derives the rows from it with
``dataclasses.replace``) and it is the static argument of the jitted attack.
The experiment presets (paper defaults, the ``--synthetic`` smoke run) live in
``experiments/configs/copyattack.py``. ``pfcdr_jax.config.to_dict`` /
``from_dict`` / ``override`` (dotted paths) serve these configs as they serve
PFCDR's.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from pfcdr_jax.copyattack import methods as methods_lib
from pfcdr_jax.copyattack import source_mf
from pfcdr_jax.copyattack import target_model

ANALYSES = ("", "depth", "popularity", "budget", "detection")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """The two platforms and the target items v*.

  Attributes:
    synthetic: tiny synthetic platforms (``synthetic.py``) instead of
      MovieLens-100K (target) and MovieLens-1M (source).
    data_dir: MovieLens cache (None: ``$PFCDR_DATA_DIR`` or
      ``~/.cache/pfcdr_jax``).
    synthetic_target_users: users of the synthetic target platform.
    synthetic_source_users: users of the synthetic source platform.
    synthetic_items: shared items of the synthetic platforms.
    synthetic_per_user: most interactions of a synthetic target user (a
      source user: twice as many).
    synthetic_popularity_exponent: long tail of the synthetic catalogue
      (``synthetic.make_synthetic_platforms``); 0: flat.
    num_target_items: target items v* scored (paper: 50).
    max_target_interactions: v* has fewer target interactions (paper: 10).
    min_source_profiles: v* is in at least this many source profiles.
    num_validation_items: qualifying items set aside, disjoint from the
      scored ones, on which attack settings are chosen
      (``data.split_target_items``); 0: no split (every draw may be scored).
    item_set: "test" (Table 2) or "validation" (the settings search): which
      side of the split the run attacks and scores.
  """

  synthetic: bool = False
  data_dir: Optional[str] = None
  synthetic_target_users: int = 80
  synthetic_source_users: int = 300
  synthetic_items: int = 60
  synthetic_per_user: int = 10
  synthetic_popularity_exponent: float = 0.0
  num_target_items: int = 50
  max_target_interactions: int = 10
  min_source_profiles: int = 30
  num_validation_items: int = 20
  item_set: str = "test"

  def __post_init__(self):
    if self.item_set not in ("test", "validation"):
      raise ValueError(f"data.item_set must be 'test' or 'validation', got "
                       f"{self.item_set!r}")
    if self.item_set == "validation" and self.num_validation_items < 1:
      raise ValueError("data.item_set='validation' needs "
                       "num_validation_items >= 1")

  @property
  def label(self) -> str:
    """Dataset name in the tables and figure titles."""
    return "SYNTHETIC" if self.synthetic else "ML100K-ML1M"


@dataclasses.dataclass(frozen=True)
class TreeConfig:
  """Clustering tree (Section 4.3.1).

  Attributes:
    depth: d (paper: 3 for the smaller source); the branching follows.
    kmeans_iters: Lloyd iterations per node.
  """

  depth: int = 3
  kmeans_iters: int = 20


@dataclasses.dataclass(frozen=True)
class PretendConfig:
  """The attacker's pretend accounts (Section 4.2).

  The paper does not say how the accounts are made. ``source="target"``
  (default): the attacker's accounts behave like target users -- they are
  ``n_pretend`` real target users drawn once by seed (with at least
  ``min_len`` interactions), held out of every evaluation. ``"source"``:
  new accounts injected before any attack, each a random ``pretend_len``
  window of a distinct source profile (an option).

  Attributes:
    n_pretend: accounts (paper: 50).
    pretend_len: items per account profile (``source="source"``).
    min_len: fewest interactions of a user an account is built from.
    source: "target" or "source" (above).
  """

  n_pretend: int = 50
  pretend_len: int = 20
  min_len: int = 5
  source: str = "target"

  def __post_init__(self):
    if self.source not in ("target", "source"):
      raise ValueError(f"pretend.source must be 'target' or 'source', got "
                       f"{self.source!r}")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """Promotion metrics (Section 5.1.2).

  Attributes:
    n_neg: sampled negatives per evaluated user (paper: 100).
  """

  n_neg: int = 100


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
  """Model analyses of Figures 3-5 and the detection study.

  Attributes:
    kind: "" (Table 2), "depth", "popularity", "budget" or "detection"
      (``detection_study``: copied vs generated fake profiles).
    depths: tree depths of ``kind="depth"``.
    budgets: budgets of ``kind="budget"``.
    items_per_group: target items per popularity decile (``kind="popularity"``).
    train_items: other items whose generated fake profiles train the
      supervised detector (``kind="detection"``), per target item and seed.
    neighbours: k of the DegSim detector.
    components: principal components of the PCA detector.
  """

  kind: str = ""
  depths: tuple[int, ...] = (2, 3, 4, 5)
  budgets: tuple[int, ...] = (5, 10, 15, 20, 25, 30)
  items_per_group: int = 5
  train_items: int = 2
  neighbours: int = 10
  components: int = 3

  def __post_init__(self):
    if self.kind not in ANALYSES:
      raise ValueError(f"unknown analysis {self.kind!r}; expected one of "
                       f"{ANALYSES[1:]}")


@dataclasses.dataclass(frozen=True)
class CopyAttackConfig:
  """Everything one run of ``pipeline.run_copyattack`` reads.

  Attributes:
    seed: master seed (target split, pretend accounts, tree, attacks).
    data: platforms and target items.
    target: target-model training.
    mf: source MF training.
    tree: clustering tree.
    pretend: pretend accounts.
    attack: base attack config; the Table 2 rows derive from it.
    evaluation: promotion metrics.
    analysis: Figures 3-5 (``analysis.kind == ""``: Table 2).
    methods: Table 2 rows to run (None = all).
    n_seeds: attack seeds ``seed .. seed + n_seeds - 1``; every method
      (baselines too) attacks every item once per seed and the rows are
      seed means.
    attack_workers: threads that run the (seed, method) attack runs side by
      side (0: one per CPU core; 1: one after another). Every random draw
      derives from the seed and the method, so the numbers do not depend on it.
  """

  seed: int = 0
  data: DataConfig = DataConfig()
  target: target_model.TargetConfig = target_model.TargetConfig()
  mf: source_mf.SourceMFConfig = source_mf.SourceMFConfig()
  tree: TreeConfig = TreeConfig()
  pretend: PretendConfig = PretendConfig()
  attack: methods_lib.AttackConfig = methods_lib.AttackConfig()
  evaluation: EvalConfig = EvalConfig()
  analysis: AnalysisConfig = AnalysisConfig()
  methods: Optional[tuple[str, ...]] = None
  n_seeds: int = 3
  attack_workers: int = 0

  def __post_init__(self):
    if self.n_seeds < 1:
      raise ValueError(f"n_seeds must be >= 1, got {self.n_seeds}")
    if self.attack_workers < 0:
      raise ValueError(f"attack_workers must be >= 0 (0: one per core), got "
                       f"{self.attack_workers}")
