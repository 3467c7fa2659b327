"""Markdown of the studies' outputs (Figure 3, Figure 4, Table 3)."""

from __future__ import annotations

from typing import Sequence

from pfcdr_jax.infra import markdown
from pfcdr_jax.studies.plots import MODEL_NAMES


def _pm(mean: float, std: float, n: int) -> str:
  return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def figure3_markdown(result: dict) -> str:
  """Figure 3's tables: MAE at each K per base model, then MAE and K per r."""
  n = result["num_seeds"]
  lines = [f"# Figure 3 (reproduction): {result['task']}, β = {result['beta']:g}", "",
           f"Mean ± sample std over {n} seed(s) (seeds {result['seeds']}). K = number of "
           "selected target users (Eq. 14); 'all' = every trained target user (x = their "
           "mean count). Validation users choose K from the method's own grid; the test "
           "users are only evaluated.", "", "Command:", "", f"    {result['command']}", ""]
  for model, agg in result["k_sweep"].items():
    at_sel = ", ".join(f"{x:.4f}" for x in agg["test_mae_at_selected_by_seed"])
    lines += [f"## ({MODEL_NAMES.get(model, model)}) MAE against K", "",
              f"K chosen on validation per seed: {agg['k_selected_by_seed']} "
              f"(test MAE there: {at_sel}); "
              f"K with the lowest test MAE per seed (not used for anything): "
              f"{agg['k_best_test_by_seed']}; candidates {agg['n_candidates_by_seed']}.", ""]
    last = len(agg["k"]) - 1
    lines += markdown.table(["K", "validation MAE", "test MAE"], (
        [f"all (~{k:.0f})" if i == last else str(k),
         _pm(agg["val_mae"][i], agg["val_mae_std"][i], n),
         _pm(agg["test_mae"][i], agg["test_mae_std"][i], n)]
        for i, k in enumerate(agg["k"])))
    lines.append("")
  if result.get("rating_sweep"):
    lines += [f"## (d) MF: MAE against the inversion's target rating r", ""]
    lines += markdown.table(
        ["r", "K chosen on validation (per seed)", "validation MAE", "test MAE", "test RMSE"],
        ([f"{row['r']:g}", row["k_by_seed"], _pm(row["val_mae"], row["val_mae_std"], n),
          _pm(row["test_mae"], row["test_mae_std"], n),
          _pm(row["test_rmse"], row["test_rmse_std"], n)]
         for row in result["rating_sweep"]))
    lines.append("")
  lines += list(result.get("notes", []))
  return "\n".join(lines) + "\n"


FIG4_KEYS = (("mean_distance", "mean distance to own truth"),
             ("mean_distance_random_pair", "… to a random other user's truth"),
             ("spread", "spread (mean distance to centroid)"), ("mmd2", "MMD² vs truth"),
             ("mmd2_p", "MMD² permutation p"))


def figure4_markdown(result: dict) -> str:
  """Figure 4's numbers: per method, mean ± std over seeds."""
  n = result["num_seeds"]
  lines = [f"# Figure 4 (reproduction): {result['task']}, β = {result['beta']:g}, "
           f"base model {result['base_model']}", "",
           f"{result['n_sample']} test users sampled per seed; numbers are mean ± sample std "
           f"over {n} seed(s) (seeds {result['seeds']}), in the {result['dim']}-d target "
           "representation space (not in t-SNE space). Ground truth: each sampled test "
           "user's representation fitted to their own target ratings by ridge regression "
           "with the pretrained target item matrix fixed (λ per seed, chosen on a held-out "
           f"fifth of those ratings: {result['lambda_by_seed']}). PFCDR: mean of the K "
           f"neighbors' representations, K chosen on validation ({result['k_by_seed']}). "
           "'Mean target user' gives every cold user the mean trained target user "
           "(a reference: no personalisation). The picture is seed 0's.", "",
           "Spread of the ground truth: "
           f"{_pm(*result['summary']['PFCDR']['spread_truth'], n)}.", "",
           "Command:", "", f"    {result['command']}", ""]
  order = sorted(result["summary"], key=lambda m: (m.startswith("Mean"), m))
  lines += markdown.table(
      ["method"] + [label for _, label in FIG4_KEYS],
      ([method] + [_pm(*result["summary"][method][k], n) for k, _ in FIG4_KEYS]
       for method in order))
  lines += [""] + list(result.get("notes", []))
  return "\n".join(lines) + "\n"


def _mb(sent, kept) -> str:
  if sent is None:
    return "—"
  b = sent + kept
  return f"{b / 1e6:.3f}" if b < 1e9 else f"{b / 1e6:.0f}"


def _bytes(b) -> str:
  return "—" if b is None else f"{b:,}"


def _sec(x) -> str:
  """Seconds: one decimal from 1 s up, milliseconds below (prediction steps are short)."""
  return "—" if x is None else f"{x:.1f}" if x >= 1 else f"{x:.3f}"


def table3_markdown(result: dict) -> str:
  """Table 3 as in the paper (metrics x methods), then the per-method detail."""
  rows = result["methods"]
  dev = result["device"]
  pre = result.get("pretraining_s")
  lines = [f"# Table 3 (reproduction): cost on {result['task']}, β = {result['beta']:g}, "
           f"base model {result['base_model']}, seed {result['seed']}", "",
           f"Measured in one run on {dev['backend']} ({dev['device_kind']}, "
           f"{dev['n_devices']} device(s), {dev['cpu_count']} CPU cores, jax {dev['jax']})"
           + (" — a loaded machine: times are not benchmarks" if result.get("loaded") else "")
           + ". Seconds of wall time, JIT compilation included. Storage = bytes sent from the "
           "source to the target domain + extra state kept to predict cold users (the "
           "pretrained target model, shared by all, not counted).", "",
           "Command:", "", f"    {result['command']}", ""]
  if pre:
    lines += [f"Shared pretraining (every method on the base models needs it; TGT's whole "
              f"training): source {pre['source']:.1f} s, target {pre['target']:.1f} s.", ""]
  names = [r["method"] for r in rows]
  lines += markdown.table(["Metric"] + names, [
      ["Training time (s)"] + [_sec(r["train_s"]) for r in rows],
      ["Testing time (s)"] + [_sec(r["test_s"]) for r in rows],
      ["Storage (MB)"] + [_mb(r["sent_bytes"], r["kept_bytes"]) for r in rows]])
  lines += ["", "Testing of the registry methods (every column but PFCDR and EMCDR) = the "
            "prediction step of the setting validation chose, timed inside the method "
            "(`pfcdr_jax/infra/phase_timer.py`); it predicts the validation and the test pairs "
            "together (column `test pairs`), so it bounds the test users' time from above; "
            "training = the rest of the call, the whole selection grid included. "
            "— = not separable (no matching prediction step), or, for TGT's training, the "
            "shared target pretraining above. The first method to use a kernel pays its "
            "compilation (e.g. the first DP-EMCDR budget).", ""]
  lines += markdown.table(
      ["method", "training s", "testing s", "test pairs", "sent bytes", "kept bytes",
       "test MAE", "what"],
      ([r["method"], _sec(r["train_s"]), _sec(r["test_s"]), _bytes(r.get("test_pairs")),
        _bytes(r["sent_bytes"]), _bytes(r["kept_bytes"]), f"{r['mae']:.4f}", r["what"]]
       for r in rows))
  lines += [""] + list(result.get("notes", []))
  return "\n".join(lines) + "\n"
