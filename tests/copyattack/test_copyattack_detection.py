"""Tests of the detection study: generated fake profiles, the detectors and
their metrics, the capture of the copied profiles, and the
``--analysis=detection`` run on tiny platforms."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax import config as config_util
from pfcdr_jax.copyattack import attacker_data
from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import config as ca_config
from pfcdr_jax.copyattack import data as data_lib
from pfcdr_jax.copyattack import detection
from pfcdr_jax.copyattack import detection_study
from pfcdr_jax.copyattack import episodes
from pfcdr_jax.copyattack import fake_profiles
from pfcdr_jax.copyattack import methods
from pfcdr_jax.copyattack import pipeline
from pfcdr_jax.copyattack import policy
from pfcdr_jax.copyattack import runner
from pfcdr_jax.copyattack import target_model
from pfcdr_jax.copyattack import tree as tree_lib

N_ITEMS, V_STAR = 80, 5


def _genuine(seed: int, n_users: int = 200) -> np.ndarray:
  """Structured users: 4 taste groups over a head-heavy catalogue."""
  rng = np.random.default_rng(seed)
  group = np.arange(N_ITEMS) % 4
  pop = 1.0 / (1 + np.arange(N_ITEMS)) ** 1.5
  m = np.zeros((n_users, N_ITEMS), bool)
  for u in range(n_users):
    w = pop * np.where(group == u % 4, 1.0, 0.05)
    m[u, rng.choice(N_ITEMS, rng.integers(8, 13), replace=False,
                    p=w / w.sum())] = True
  return m


def _fake_matrix(genuine, kind, item, sizes, rng):
  pairs = np.argwhere(genuine).astype(np.int32)
  cooc = fake_profiles.cooccurrence(pairs, item, N_ITEMS)
  return detection.to_matrix(fake_profiles.make_profiles(
      kind, rng, item, sizes, genuine.sum(0), cooc), N_ITEMS)


def _train_groups(genuine, sizes, seed):
  rng = np.random.default_rng(seed)
  return [_fake_matrix(genuine, kind, item, sizes, rng)
          for kind in fake_profiles.KINDS for item in (7, 11)]


@pytest.mark.parametrize("kind", fake_profiles.KINDS)
def test_fake_profiles_hold_v_star_have_the_sizes_and_are_seeded(kind):
  genuine = _genuine(0)
  pop = genuine.sum(0)
  cooc = fake_profiles.cooccurrence(np.argwhere(genuine), V_STAR, N_ITEMS)
  sizes = [1, 3, 7, 12, 30, 500]
  make = lambda seed: fake_profiles.make_profiles(
      kind, np.random.default_rng(seed), V_STAR, sizes, pop, cooc)
  profiles = make(0)
  assert [len(p) for p in profiles] == [1, 3, 7, 12, 30, N_ITEMS]
  for p in profiles:
    assert p.dtype == np.int32 and p[0] == V_STAR
    assert len(np.unique(p)) == len(p) and p.min() >= 0 and p.max() < N_ITEMS
  assert all(np.array_equal(a, b) for a, b in zip(profiles, make(0)))
  assert any(not np.array_equal(a, b) for a, b in zip(profiles[2:5],
                                                       make(1)[2:5]))
  assert fake_profiles.pad(profiles[:2], 5).tolist() == [
      [V_STAR, -1, -1, -1, -1], profiles[1].tolist() + [-1, -1]]


def test_bandwagon_and_segment_filler_follow_their_rule():
  pop = np.arange(N_ITEMS, 0, -1).astype(float)  # item 0 most popular
  rng = np.random.default_rng(0)
  (band,) = fake_profiles.make_profiles("bandwagon", rng, V_STAR, [21], pop,
                                        select_frac=0.3)
  assert set(band[1:7]) == {0, 1, 2, 3, 4, 6}  # the top 6 without v*
  pairs = np.array([[0, V_STAR], [0, 9], [0, 10], [1, V_STAR], [1, 10],
                    [2, 11], [2, 12]], np.int32)
  cooc = fake_profiles.cooccurrence(pairs, V_STAR, N_ITEMS)
  assert cooc[[9, 10, 11, V_STAR]].tolist() == [1, 2, 0, 0]
  short, long = fake_profiles.make_profiles("segment", rng, V_STAR, [3, 6],
                                            pop, cooc)
  assert set(short[1:]) == {9, 10}
  assert {9, 10} <= set(long)
  with pytest.raises(ValueError, match="unknown"):
    fake_profiles.make_profiles("nope", rng, V_STAR, [3], pop)
  with pytest.raises(ValueError, match=">= 1"):
    fake_profiles.make_profiles("random", rng, V_STAR, [0], pop)


def test_every_detector_separates_random_filler_profiles():
  genuine = _genuine(0)
  sizes = [25] * 20
  fakes = _fake_matrix(genuine, "random", V_STAR, sizes,
                       np.random.default_rng(1))
  sup = detection.fit_supervised(genuine, _train_groups(genuine, sizes, 2),
                                 seed=0)
  res = detection.evaluate_detectors(genuine, fakes, sup)
  assert set(res) == set(detection.DETECTORS)
  for name, m in res.items():
    assert m["auc"] > 0.85, (name, m)
    assert 0.0 <= m["recall_at_budget"] <= 1.0


def test_a_random_subset_of_genuine_users_is_not_detected():
  genuine = _genuine(3, n_users=300)
  aucs = {d: [] for d in detection.DETECTORS}
  for s in range(4):
    idx = np.random.default_rng(s).permutation(len(genuine))
    rest, subset = genuine[idx[100:]], genuine[idx[:100]]
    sup = detection.fit_supervised(rest, _train_groups(rest, [10] * 20, s),
                                   seed=s)
    for name, m in detection.evaluate_detectors(rest, subset, sup,
                                                seed=s).items():
      aucs[name].append(m["auc"])
  for name, a in aucs.items():
    assert abs(np.mean(a) - 0.5) < 0.1, (name, a)


def test_recall_at_budget_by_hand():
  scores = np.array([0.9, 0.8, 0.7, 0.1, 0.5])
  inj = np.array([True, False, True, False, False])
  # Top 2 = users 0 and 1: one of the two injected users.
  assert detection.recall_at_budget(scores, inj) == 0.5
  assert detection.recall_at_budget(scores, inj, budget=3) == 1.0
  assert detection.recall_at_budget(scores, inj, budget=1) == 0.5
  # Three users tied for two places: the injected one gets 2/3 of a place.
  tied = np.array([1.0, 1.0, 1.0, 0.0])
  assert detection.recall_at_budget(tied, np.array([1, 0, 0, 0], bool),
                                    budget=2) == pytest.approx(2 / 3)
  assert np.isnan(detection.recall_at_budget(scores, np.zeros(5, bool)))
  m = detection.detection_metrics(scores, inj)
  assert m["auc"] == pytest.approx(5 / 6) and m["recall_at_budget"] == 0.5


def test_rebuilt_injected_profiles_are_what_the_platform_holds():
  rng = np.random.default_rng(0)
  n_users, n_items, l_max, n_src = 20, 15, 6, 13
  pairs = np.stack([rng.integers(0, n_users, 120),
                    rng.integers(0, n_items, 120)], 1).astype(np.int32)
  model = target_model.PinSage(n_items=n_items, n_users=n_users, dim=4)
  params = model.init(jax.random.key(0), jnp.asarray(pairs[:, 0]),
                      jnp.asarray(pairs[:, 1]), jnp.ones(len(pairs)))
  lengths = rng.integers(3, l_max + 1, n_src).astype(np.int32)
  others = np.delete(np.arange(n_items), V_STAR)
  profiles = fake_profiles.pad([rng.choice(others, n, replace=False)
                                for n in lengths], l_max)
  profiles[:9, 0] = V_STAR
  p = rng.normal(size=(n_src, 4)).astype(np.float32)
  q = rng.normal(size=(n_items, 4)).astype(np.float32)
  tr = tree_lib.build_tree(p, 2, seed=0)
  bb, state, _ = blackbox.make_blackbox(
      model, params, pairs, n_users, extra_users=12,
      extra_interactions=12 * l_max, max_profile_len=l_max, incremental=True)
  pretend = attacker_data.make_pretend_profiles(profiles, lengths, 3, 3, 3, 0)
  state, pretend_users = attacker_data.register_pretend_users(bb, state,
                                                              pretend)
  data = attacker_data.make_attacker_data(tr, profiles, lengths, p, q,
                                          np.asarray(pretend_users), pretend)
  cfg = methods.AttackConfig(budget=7, query_every=2, goal_hr=2.0)
  pcfg = policy.PolicyConfig(emb_dim=4, hidden=8, branching=tr.branching,
                             depth=tr.depth)
  after, traj = episodes.rollout(
      policy.init_policy(jax.random.key(1), pcfg), data, state,
      jnp.int32(V_STAR), jax.random.key(2), bb=bb, cfg=cfg, pcfg=pcfg)
  rebuilt = runner.injected_profiles(data, traj, V_STAR)
  assert len(rebuilt) == int(np.asarray(traj.active).sum()) == 7
  assert len(set(np.asarray(traj.level).tolist())) > 1
  held = np.asarray(after.extra_rows)[3:3 + len(rebuilt)]
  assert np.array_equal(held, detection.to_matrix(rebuilt, n_items))
  assert [len(r) for r in rebuilt] == np.asarray(traj.n_items)[
      np.asarray(traj.active)].tolist()
  assert all(V_STAR in r for r in rebuilt)


def _tiny_detection_config(**changes) -> ca_config.CopyAttackConfig:
  """Seconds-sized detection run: baselines only, budget 3."""
  return config_util.override(ca_config.CopyAttackConfig(), dict({
      "data.synthetic": True, "data.synthetic_target_users": 40,
      "data.synthetic_source_users": 60, "data.synthetic_items": 60,
      "data.num_target_items": 2, "data.max_target_interactions": 100,
      "data.min_source_profiles": 3, "target.max_epochs": 2,
      "target.n_neg": 10, "target.batch_size": 32, "mf.epochs": 2,
      "mf.lrs": (0.01,), "mf.batch_size": 256, "tree.depth": 2,
      "pretend.n_pretend": 5, "pretend.pretend_len": 5,
      "attack.budget": 3, "attack.query_every": 3, "attack.reward_k": 5,
      "evaluation.n_neg": 10, "analysis.kind": "detection",
      "analysis.train_items": 1, "n_seeds": 1,
      "methods": ("TargetAttack100", "RandomAttack")}, **changes))


@pytest.mark.usefixtures("fast_compile")
def test_detection_run_writes_the_schema_and_reinjection_matches(tmp_path):
  cfg = _tiny_detection_config()
  out = pipeline.run_copyattack(cfg, tmp_path)
  on_disk = json.loads((tmp_path / "detection.json").read_text())
  assert out == {"analysis": "detection", "result": on_disk}
  names = ["TargetAttack100", "RandomAttack"] + list(
      detection_study.FAKE_ATTACKS)
  assert list(on_disk["attacks"]) == names
  for rows in [on_disk["attacks"]] + [r["attacks"] for r in on_disk["per_item"]]:
    for a in rows.values():
      assert 0.0 <= a["hr20"] <= 1.0
      assert set(a["detection"]) == set(detection.DETECTORS)
      for m in a["detection"].values():
        assert set(m) == {"auc", "recall_at_budget"}
        assert 0.0 <= m["auc"] <= 1.0 and 0.0 <= m["recall_at_budget"] <= 1.0
  assert len(on_disk["per_item"]) == 2
  assert on_disk["reference_attack"] == "TargetAttack100"
  assert "Fake-Segment" in (tmp_path / "detection.md").read_text()
  assert (tmp_path / "detection.png").read_bytes()[:4] == b"\x89PNG"
  # The captured copies, injected again the study's way, score as Table 2's.
  setup = pipeline.prepare(cfg, data_lib.align_platforms(
      *pipeline.load_platforms(cfg.data, cfg.seed)))
  tr, data, _ = pipeline.build_attacker(setup, 2, cfg.seed)
  items = pipeline.target_items(setup.cd, cfg.data, cfg.seed)
  name, injected = "TargetAttack100", {}
  res = runner.run_methods(
      setup, items, {name: methods.table2_methods(cfg.attack)[name]}, tr, data,
      cfg.seed, cfg.evaluation.n_neg, injected=injected)
  for rec in res["per_item"]:
    table2 = rec["methods"][name]
    profiles = injected[(cfg.seed, name, rec["item"])]
    assert len(profiles) == table2["n_injected"]
    again = detection_study.injected_promotion(
        setup, runner.item_eval(setup, rec["item"], cfg.evaluation.n_neg),
        profiles, cfg.attack.budget)
    assert again["percentile"] != rec["methods"]["Without Attack"]["percentile"]
    for k, v in again.items():
      assert v == pytest.approx(table2[k], abs=1e-5), k
