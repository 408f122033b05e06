"""Training loop: simulated asynchronous rounds, metrics, checkpoints."""
from jnigt.training.config import METHODS, OPTIMIZERS, TrainConfig
from jnigt.training.loop import Trainer, TrainState

__all__ = ["METHODS", "OPTIMIZERS", "TrainConfig", "TrainState", "Trainer"]
from jnigt.training.run import train  # noqa: E402

__all__.append("train")
