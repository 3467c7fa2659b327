"""numpy's huge-page advice: off inside the data stage's context, unless the user chose."""
import numpy as np
import pytest

from pfcdr_jax.infra import hugepages


@pytest.fixture
def setter():
  set_advice = hugepages._setter()
  if set_advice is None:
    pytest.skip("this numpy has no huge-page setter")
  before = set_advice(True)
  yield set_advice
  set_advice(before)


def test_advice_off_inside_and_restored_after(monkeypatch, setter):
  monkeypatch.delenv(hugepages.ENV, raising=False)
  with hugepages.advice_off():
    np.ones(1 << 20)                        # allocations work with the advice off
    assert setter(False) is False           # the setter returns the value it replaces
  assert setter(True) is True               # restored


def test_advice_restored_when_the_body_raises(monkeypatch, setter):
  monkeypatch.delenv(hugepages.ENV, raising=False)
  with pytest.raises(RuntimeError):
    with hugepages.advice_off():
      raise RuntimeError("boom")
  assert setter(True) is True


@pytest.mark.parametrize("value", ["1", "0"])
def test_the_users_variable_wins(monkeypatch, setter, value):
  monkeypatch.setenv(hugepages.ENV, value)
  with hugepages.advice_off():
    assert setter(True) is True             # left as it was
