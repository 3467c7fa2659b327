"""markdown: pipe-table rows, separators and whole tables in the reports' layout."""
import pytest

from pfcdr_jax.infra import markdown


def test_row_pads_each_cell_and_keeps_empty_cells_wide():
  assert markdown.row(["a", 1, 0.5]) == "| a | 1 | 0.5 |"
  assert markdown.row(["", "b", ""]) == "|  | b |  |"
  assert markdown.row(iter(["x"])) == "| x |"


def test_header_row_writes_an_empty_cell_narrow():
  assert markdown.header_row(["a", "b"]) == markdown.row(["a", "b"])
  assert markdown.header_row(["Datasets", "", "(A, B)"]) == "| Datasets | | (A, B) |"


def test_separator_plain_and_aligned():
  assert markdown.separator(3) == "|---|---|---|"
  assert markdown.separator(3, [None, "right", "center"]) == "|---|---:|:---:|"
  assert markdown.separator(1, ["left"]) == "|:---|"
  with pytest.raises(ValueError, match="2 alignments for 3 columns"):
    markdown.separator(3, ["left", "right"])


def test_table_is_header_separator_then_rows():
  lines = markdown.table(["K", "MAE"], ([k, f"{v:.2f}"] for k, v in [(5, 0.8), (10, 0.75)]))
  assert lines == ["| K | MAE |", "|---|---|", "| 5 | 0.80 |", "| 10 | 0.75 |"]
  assert markdown.table(["a"], []) == ["| a |", "|---|"]
  assert markdown.table(["a", "b"], [], align=["right", None])[1] == "|---:|---|"
