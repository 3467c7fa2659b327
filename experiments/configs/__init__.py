"""Presets of the experiment scripts: one module per system (pfcdr, copyattack)."""
