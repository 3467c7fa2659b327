"""pfcdr_jax: PFCDR (WWW'25) and CopyAttack in JAX.

The public API is re-exported here::

  from pfcdr_jax import invert_users, select_neighbors, fit_predict, run_pfcdr

Modules, by what they compute:
  pfcdr_jax.data        -- download, parse, split (Amazon 5-core, MovieLens, custom, synthetic)
  pfcdr_jax.models      -- MF / GMF / YouTube-DNN scorers and their training loop
  pfcdr_jax.inversion   -- conditional model inversion -> user prototypes (Eq. 5, 9-11)
  pfcdr_jax.bridge      -- linear prototype bridge (Eq. 12)
  pfcdr_jax.topk        -- top-k matching of transferred prototypes (Eq. 13-14)
  pfcdr_jax.method      -- the PFCDR method composed: prototypes -> bridge -> K -> Eq. 14
  pfcdr_jax.method_plus -- PFCDR+ (ours): bias floor + prototype bilinear bridge + neighbours
  pfcdr_jax.config      -- nested frozen configs and what each stage's cache key reads
  pfcdr_jax.privacy     -- what transferred vectors reveal: attacks, controls, PFCDR-DP
  pfcdr_jax.baselines   -- every other method (TGT, EMCDR, floors, Table 1), one registry
  pfcdr_jax.pipeline    -- the end-to-end experiment (load, cache, record, write)
  pfcdr_jax.comparison  -- Table 1 / Figure 2 sweeps over seeds, tests, rendering
  pfcdr_jax.studies     -- Figure 3 (K, r sweeps), Figure 4 (t-SNE), Table 3 (cost)
  pfcdr_jax.copyattack  -- CopyAttack (Fan et al.)
"""

__version__ = "0.1.0"

from pfcdr_jax.bridge import apply_bridge
from pfcdr_jax.bridge import fit_linear_bridge
from pfcdr_jax.config import BridgeConfig
from pfcdr_jax.config import DataConfig
from pfcdr_jax.config import PFCDRConfig
from pfcdr_jax.config import PretrainConfig
from pfcdr_jax.config import SplitConfig
from pfcdr_jax.config import TopKConfig
from pfcdr_jax.inversion import InversionConfig
from pfcdr_jax.inversion import invert_user
from pfcdr_jax.inversion import invert_users
from pfcdr_jax.method import fit_bridge
from pfcdr_jax.method import fit_predict
from pfcdr_jax.method import predict_cold
from pfcdr_jax.method import prototypes
from pfcdr_jax.method import select_k
from pfcdr_jax.method import StageKeys
from pfcdr_jax.method_plus import fit_predict_plus
from pfcdr_jax.method_plus import PlusConfig
from pfcdr_jax.models.scorers import get_scorer
from pfcdr_jax.models.train import train_scorer
from pfcdr_jax.pipeline import run_pfcdr
from pfcdr_jax.privacy.dp_prototypes import DPPrototypeConfig
from pfcdr_jax.privacy.study import run_privacy
from pfcdr_jax.topk import neighbor_mean
from pfcdr_jax.topk import predict_from_neighbors
from pfcdr_jax.topk import select_neighbors
from pfcdr_jax.copyattack.config import CopyAttackConfig
from pfcdr_jax.copyattack.pipeline import run_copyattack
