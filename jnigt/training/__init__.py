"""Training loop: simulated asynchronous rounds, metrics, checkpoints."""

from jnigt.training.config import METHODS, OPTIMIZERS, TrainConfig
from jnigt.training.loop import Trainer, TrainState
from jnigt.training.run import train

__all__ = ["METHODS", "OPTIMIZERS", "TrainConfig", "TrainState", "Trainer", "train"]
