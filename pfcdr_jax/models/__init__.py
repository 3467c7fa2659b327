"""Base rating models (MF, GMF, YouTube-DNN) and their lr-grid pretraining."""
from pfcdr_jax.models.scorers import Scorer, get_scorer
from pfcdr_jax.models.train import TrainConfig, TrainResult, train_scorer

__all__ = ["Scorer", "get_scorer", "TrainConfig", "TrainResult", "train_scorer"]
