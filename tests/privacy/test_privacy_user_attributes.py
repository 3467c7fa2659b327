"""ML-1M user attributes (data.movielens_formats.parse_ml1m_users), both file formats."""

import pytest

from pfcdr_jax.data import movielens_formats
from pfcdr_jax.data.errors import DataError


def test_official_and_wheel_formats_give_the_same_frame(tmp_path):
  official = tmp_path / "users.dat"
  official.write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
  wheel = tmp_path / "ml-1m.user"
  wheel.write_text("user_id:token\tage:float\tgender:token\toccupation:float\tzip_code:token\n"
                   "1m_1\t1\tF\t10\t48067\n1m_2\t56\tM\t16\t70072\n")
  a = movielens_formats.parse_ml1m_users("official", official)
  b = movielens_formats.parse_ml1m_users("recbole", wheel)
  assert a.equals(b)
  assert list(a["user"]) == ["1", "2"] and list(a["gender"]) == ["F", "M"]
  assert list(a["age"]) == [1, 56] and list(a["occupation"]) == [10, 16]


def test_bad_gender_names_the_line(tmp_path):
  path = tmp_path / "users.dat"
  path.write_text("1::F::1::10::48067\n2::X::56::16::70072\n")
  with pytest.raises(DataError, match=r"users.dat:2: field .gender."):
    movielens_formats.parse_ml1m_users("official", path)
