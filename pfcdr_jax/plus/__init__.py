"""PFCDR+ (ours): the bias floor, a prototype bilinear bridge and neighbours."""
from pfcdr_jax.plus.method import *  # noqa: F401,F403  (re-exported public names)
