"""The attack suite (privacy.study.attack): perfect on U_i itself, chance on controls."""

import numpy as np
import pytest

from pfcdr_jax.privacy import study
from pfcdr_jax.privacy import transfers

N_USERS, N_ITEMS, DIM = 700, 60, 5


@pytest.fixture(scope="module")
def planted():
  """Zero-mean users who rate their top items by U.V and like the better half."""
  rng = np.random.default_rng(0)
  U = rng.normal(size=(N_USERS, DIM))
  V = rng.normal(size=(N_ITEMS, DIM))
  s = U @ V.T
  rows, items, ratings = [], [], []
  for u in range(N_USERS):
    top = np.argsort(-s[u])[:12]
    rows += [u] * 12
    items += list(top)
    ratings += [5.0] * 6 + [2.0] * 6
  attributes = {"gender": (U @ [1.0, -1.0, 0.5, 0.0, 0.2] > 0).astype(np.int64),
                "age": np.argmax(U[:, :3], axis=1).astype(np.int64)}
  perm = rng.permutation(N_USERS)
  truth = study.Truth(U, V, np.sort(perm[:500]), np.sort(perm[500:]),
                      (np.array(rows), np.array(items), np.array(ratings)), attributes)
  return truth


def _transfer(truth, vectors, name="x"):
  return transfers.Transfer(name, np.arange(N_USERS), vectors, True, truth.V.T, None, {})


def test_every_attack_is_near_perfect_on_u_itself(planted):
  out = study.attack(_transfer(planted, planted.U), planted)
  for who in ("A_direct", "C_decoder"):
    assert out["embedding"][who]["r2"] > 0.99
    assert out["embedding"][who]["cos_centered"] > 0.99
    assert out["linkage"][who]["top1"] > 0.97     # est and pool centred by own means
    assert out["linkage"][who]["top10"] == pytest.approx(1.0)
  for who in ("B", "C"):
    assert out["preference"][who]["high_low"] > 0.99
    assert out["preference"][who]["rated_unrated"] > 0.99
  assert out["preference"]["B"]["sign_agreement"] == pytest.approx(1.0)
  assert out["attributes"]["gender"]["auc"] > 0.97
  assert out["attributes"]["age"]["accuracy"] > 0.85


def test_every_attack_is_at_chance_on_the_controls(planted):
  base = _transfer(planted, planted.U)
  for control in study.control_transfers(base, "U_i", seed=1):
    out = study.attack(control, planted)
    for who in ("A_direct", "C_decoder"):
      assert out["embedding"][who]["r2"] < 0.05
      assert abs(out["embedding"][who]["cos_centered"]) < 0.1
      assert out["linkage"][who]["top10"] < 0.05          # chance 10/700 = 0.014
    for who in ("B", "C"):
      assert abs(out["preference"][who]["high_low"] - 0.5) < 0.05
      assert abs(out["preference"][who]["rated_unrated"] - 0.5) < 0.05
    assert abs(out["preference"]["B"]["sign_agreement"] - 0.5) < 0.05
    assert abs(out["attributes"]["gender"]["auc"] - 0.5) < 0.1
    assert out["attributes"]["age"]["accuracy"] < out["attributes"]["age"]["majority"] + 0.1


def test_a_transfer_outside_the_user_space_gets_decoder_attacks_only(planted):
  rng = np.random.default_rng(2)
  proj = planted.U @ rng.normal(size=(DIM, 8))                 # a linear code of U
  tr = transfers.Transfer("coded", np.arange(N_USERS), proj, False, None, None, {})
  out = study.attack(tr, planted)
  assert set(out["embedding"]) == {"C_decoder"} and set(out["preference"]) == {"C"}
  assert out["embedding"]["C_decoder"]["r2"] > 0.99


def test_missing_users_are_an_error(planted):
  tr = _transfer(planted, planted.U)._replace(users=np.arange(N_USERS) + 1)
  with pytest.raises(ValueError, match="no transferred vector"):
    study.attack(tr, planted)
