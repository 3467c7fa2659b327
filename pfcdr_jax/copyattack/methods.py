"""Table 2's attack methods: ``AttackConfig`` (one method and its RL
hyper-parameters) and ``table2_methods``, the rows built on a base config
(Section 5.1.4).
"""
from __future__ import annotations

import dataclasses
import functools


@dataclasses.dataclass(frozen=True)
class AttackConfig:
  """One attack method (a row of Table 2) and its RL hyper-parameters.

  Attributes:
    selector: "tree" (CopyAttack), "flat" (PolicyNetwork) or "random".
    masking: restrict selection to profiles containing v* (Section 4.3.2).
    craft: 0 = learned crafting policy (Section 4.4); 1..10 = fixed window
      of 10%..100% (10 = copy the whole profile).
    budget: Delta, copied profiles per attack.
    query_every: injections between two queries.
    reward: "rank" (default): a pretend user scores ``1 - pos / k`` when v*
      is at 0-based position ``pos`` of its top-k list, 0 when absent (with
      the whole catalogue as the list, v*'s percentile); "hr": the paper's
      HR@k (Eq. (1)), 1 when v* is in the list. The pretend score is the mean
      over pretend users who have not interacted with v*.
    reward_k: k of the pretend users' top-k lists; 0 = the whole catalogue
      (needs ``reward="rank"``). For "hr", k = 200 of ML-100K's 1,163 items
      (~17%) matches the evaluated HR@20 of 101 sampled items; with k = 20
      the reward is 0 in almost every episode.
    increments: the reward of a query is the score's increase since the
      previous query (the first is preceded by one query of the untouched
      platform); off: the score itself (the paper's Eq. (1)).
    goal_hr: the promotion goal; an episode stops once the pretend score
      reaches it (default 1.0: every eligible pretend user has v* on top /
      in its top-k).
    gamma: discount factor.
    lr: Adam learning rate.
    episodes: training episodes (0 for the baselines): of the one shared
      policy in all (``shared``), else per target item.
    batch_episodes: episodes vmapped per REINFORCE update.
    shared: one policy trained over all target items of the run (its state
      holds q_v*); off: a fresh policy per item (the paper).
    entropy: weight of the entropy bonus (selection + crafting).
    normalize_adv: divide advantages by their batch standard deviation.
    hidden: hidden width of the policy MLPs.
    baseline_decay: EMA decay of the per-step reward baseline.
    final_greedy: the final attack takes the most probable actions instead
      of sampling from the learned policy. Off by default: when the reward
      stayed 0 in training (common for hard items) the policy is still its
      random init, and its argmax is one arbitrary crafting level / cluster
      for all 30 picks.
    query_budget: queries of the black box one target item's attack may
      spend, training and final attack together (0: no cap). A per-item
      policy trains on ``query_budget - episode_queries`` queries; a shared
      policy on ``n_items * (query_budget - episode_queries)``, so for it the
      budget holds per item *on average* (items are drawn at random, some get
      more episodes than others; the reported spend is the total over the
      items). Training stops before the first update that could exceed it
      (``training.n_updates``). A baseline with ``best_of`` spends it on
      trial attacks.
    credit: "last": a query's reward goes to the last injection of its
      group (earlier ones see it discounted); "spread": shared equally by the
      group's injections.
    baseline: "ema": a per-item, per-step moving average of past returns
      (starts at 0); "loo": the mean return of the *other* episodes of the
      same item in the update (leave-one-out: it does not depend on the
      episode's own actions, so without ``normalize_adv`` the estimator is
      unbiased), the moving average where an item has one episode.
    episodes_per_item: episodes of each drawn item in one update (a shared
      policy draws ``batch_episodes // episodes_per_item`` items); >= 2 gives
      "loo" its other episodes.
    checkpoints: the training is cut into this many equal chunks and the
      policy after each is kept (``training.TrainResult.checkpoints``): the
      points of the HR@20-against-queries curve.
    best_of: a baseline's final attack is the best (by the pretend users'
      score) of the trial attacks ``query_budget`` pays for, replayed: the
      comparator of the learned methods at their total spend (its curve has
      points at 0, 1, 3, 7, ... trials, not at their checkpoints). Only for
      methods that do not learn.
    stop: "budget": train until the query budget (or ``episodes``) is
      spent; "plateau": also stop once the mean return of the training
      episodes stops improving (``training.Plateau``: ``plateau_patience``
      windows of ``plateau_window`` updates in a row, none above the best
      window by more than their combined standard errors). The return is
      read off the training episodes themselves, fresh on-policy rollouts
      of the pretend users, so the rule spends no extra query; the queries
      it leaves unspent are not used elsewhere.
    plateau_window: updates per window of the plateau rule.
    plateau_patience: windows without improvement that stop the training.
  """

  selector: str = "tree"
  masking: bool = True
  craft: int = 0
  budget: int = 30
  query_every: int = 3
  reward: str = "rank"
  reward_k: int = 0
  increments: bool = True
  goal_hr: float = 1.0
  gamma: float = 0.6
  lr: float = 1e-2
  episodes: int = 512
  batch_episodes: int = 16
  shared: bool = True
  entropy: float = 0.01
  normalize_adv: bool = True
  hidden: int = 16
  baseline_decay: float = 0.9
  final_greedy: bool = False
  query_budget: int = 0
  credit: str = "last"
  baseline: str = "ema"
  episodes_per_item: int = 1
  checkpoints: int = 1
  best_of: bool = False
  stop: str = "budget"
  plateau_window: int = 20
  plateau_patience: int = 3

  def __post_init__(self):
    if self.reward not in ("rank", "hr"):
      raise ValueError(f"reward must be 'rank' or 'hr', got {self.reward!r}")
    if self.reward == "hr" and self.reward_k <= 0:
      raise ValueError("reward='hr' needs reward_k > 0 (HR@k)")
    if self.credit not in ("last", "spread"):
      raise ValueError(f"credit must be 'last' or 'spread', got "
                       f"{self.credit!r}")
    if self.baseline not in ("ema", "loo"):
      raise ValueError(f"baseline must be 'ema' or 'loo', got "
                       f"{self.baseline!r}")
    if self.episodes_per_item < 1 or (
        self.batch_episodes % self.episodes_per_item):
      raise ValueError(f"episodes_per_item ({self.episodes_per_item}) must "
                       f"divide batch_episodes ({self.batch_episodes})")
    if self.best_of and self.learns:
      raise ValueError("best_of is a baseline's way to spend queries; a "
                       "learning method spends them on training")
    if self.stop not in ("budget", "plateau"):
      raise ValueError(f"stop must be 'budget' or 'plateau', got "
                       f"{self.stop!r}")
    if self.plateau_window < 2 or self.plateau_patience < 1:
      raise ValueError(
          f"plateau_window ({self.plateau_window}) must be >= 2 and "
          f"plateau_patience ({self.plateau_patience}) >= 1")
    if self.checkpoints < 1:
      raise ValueError(f"checkpoints must be >= 1, got {self.checkpoints}")
    if self.query_budget < 0 or (
        0 < self.query_budget < self.episode_queries):
      raise ValueError(
          f"query_budget={self.query_budget}: expected 0 (no cap) or at "
          f"least the {self.episode_queries} queries of one attack")

  @property
  def learns(self) -> bool:
    return self.selector != "random" or self.craft == 0

  @property
  def episode_queries(self) -> int:
    """Most queries one attack episode makes: one per group of
    ``query_every`` injections, plus the first query of the untouched
    platform with ``increments``."""
    return -(-self.budget // self.query_every) + int(self.increments)

  def trials(self) -> int:
    """Trial attacks of a ``best_of`` baseline: what ``query_budget`` pays
    for besides the final attack (0 without ``best_of``)."""
    if not self.best_of or not self.query_budget:
      return 0
    return (self.query_budget - self.episode_queries) // self.episode_queries


def table2_methods(base: AttackConfig) -> dict[str, AttackConfig]:
  """The attack rows of Table 2 (Section 5.1.4) built on ``base``."""
  r = functools.partial(dataclasses.replace, base)
  rows = {
      "RandomAttack": r(selector="random", masking=False, craft=10, episodes=0),
      "TargetAttack40": r(selector="random", masking=True, craft=4, episodes=0),
      "TargetAttack70": r(selector="random", masking=True, craft=7, episodes=0),
      "TargetAttack100": r(selector="random", masking=True, craft=10,
                           episodes=0),
      "PolicyNetwork": r(selector="flat", masking=True, craft=0),
      "CopyAttack-Masking": r(selector="tree", masking=False, craft=10),
      "CopyAttack-Length": r(selector="tree", masking=True, craft=10),
      "CopyAttack": r(selector="tree", masking=True, craft=0),
  }
  if base.query_budget:
    # The best baseline at the learned methods' query spend.
    rows["TargetAttack100-BestOf"] = r(selector="random", masking=True,
                                       craft=10, episodes=0, best_of=True)
  return rows
