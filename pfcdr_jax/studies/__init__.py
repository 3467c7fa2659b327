"""Studies of a PFCDR run beyond Table 1: the paper's Figure 3, Figure 4 and Table 3.

Each module rebuilds a run from the public parts of ``pfcdr_jax.harness.stages`` (the split,
the cached pretrained scorers and prototypes) and ``pfcdr_jax.pfcdr.method`` (bridge, K
selection, top-k prediction), so a study measures the method the tables report:

  k_sweep        -- MAE against K from one run's cached prototypes (Figure 3 a-c)
  rating_sweep   -- MAE and the validation K against the inversion's target rating r
                    (Figure 3 d)
  embedding_map  -- ground-truth target embeddings of cold users, transferred
                    embeddings of EMCDR and PFCDR, distance and MMD (Figure 4)
  tsne           -- the t-SNE panels of Figure 4 (scikit-learn)
  cost           -- training / testing time and cross-domain storage per method (Table 3)
  plots          -- Figure 3's panels and Table 3's bars
  records        -- resumable per-(study, model, seed) JSON cells; the device a run used
  reports        -- the markdown of the three outputs
"""
