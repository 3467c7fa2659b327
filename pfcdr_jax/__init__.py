"""pfcdr_jax: PFCDR (WWW'25) and CopyAttack in JAX.

Functional kernels live in submodules:
  pfcdr_jax.data        -- download, parse, split (Amazon 5-core, MovieLens, custom, synthetic)
  pfcdr_jax.models      -- MF / GMF / YouTube-DNN scorers and their training loop
  pfcdr_jax.inversion   -- conditional model inversion -> user prototypes (Eq. 5, 9-11)
  pfcdr_jax.bridge      -- linear prototype bridge (Eq. 12)
  pfcdr_jax.topk        -- top-k matching of transferred prototypes (Eq. 13-14)
  pfcdr_jax.baselines   -- TGT, EMCDR, floors, ...
  pfcdr_jax.pipeline    -- the end-to-end PFCDR experiment
  pfcdr_jax.copyattack  -- CopyAttack (Fan et al.)
"""

__version__ = "0.1.0"
