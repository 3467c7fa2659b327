"""Baselines of the PFCDR comparison (each a module of pure functions)."""
