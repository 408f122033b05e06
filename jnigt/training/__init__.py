"""Training: simulated asynchronous rounds, metrics, checkpoints.

``Trainer`` (pure init / step / next_time / evaluate / eval_params / run_chunk), ``train`` (a run to
the end with metrics and checkpoints), ``TrainConfig`` (plain data), ``METHODS`` (name -> module), ``DivergedError`` (a run that diverged or
stalled, jnigt.training.divergence).
"""

from jnigt.training.build import OPTIMIZERS
from jnigt.training.config import TrainConfig
from jnigt.training.divergence import DivergedError
from jnigt.training.loop import SimulatedClockError, Trainer
from jnigt.training.methods import METHODS, label
from jnigt.training.run import train
from jnigt.training.state import TrainState

__all__ = [
    "DivergedError",
    "METHODS",
    "OPTIMIZERS",
    "SimulatedClockError",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "label",
    "train",
]
