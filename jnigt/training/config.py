"""Typed training configuration (plain data), checked in plain Python before anything is traced.

What it names is built by ``jnigt.training.build`` (timing, policy, optimizer) and
``jnigt.training.methods`` (the method).
"""

from __future__ import annotations

import dataclasses
import math

from jnigt.training.build import OPTIMIZERS, POLICIES, check_extra_fields
from jnigt.training.methods import METHODS


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run. ``method`` + ``optimizer`` name the algorithm:
    rennala+nigt = Rennala NIGT, malenia+nigt = Malenia NIGT, synchronized+nigt =
    Synchronized NIGT, afedpg+nigt = AFedPG (server momentum), rennala+adam = "Rennala PG" ablation.
    """

    env: str = "inverted_pendulum"
    backend: str | None = "spring"
    method: str = "rennala"
    optimizer: str = "nigt"
    num_agents: int = 10
    step_model: str | tuple[float, ...] = "sqrt"  # equal | sqrt | decreasing | random | (h_1, ..., h_n)
    comm_model: str | float | tuple[float, ...] = "zero"  # zero | sqrt | sqrt_d | a number | (k_1, ..., k_n)
    jitter: float = 0.0
    stragglers: int = 0
    dead: int = 0
    allreduce_cost: str = "max"
    horizon: int = 64
    discount: float = 0.99
    learning_rate: float = 2.0**-5
    momentum: float = 0.1
    batch_size: int = 20
    init_batch_size: int | None = None
    rounds: int = 50
    eval_every: int = 10
    eval_episodes: int = 16
    hidden_sizes: tuple[int, ...] = (64, 64)
    policy: str = "mlp"  # mlp (SPEC section 1) | linear (mu = W s + b, no tanh; LQR ground truth)
    seed: int = 0
    malenia_slack: float = 2.0  # slot buffer factor for Malenia under jitter
    time_unit: str = "step"  # "step": h_i per env step; "trajectory": h_i per gradient (jnigt.timing)

    def __post_init__(self):
        def bad(field, msg):
            raise ValueError(f"{field}: {msg} (got {getattr(self, field)!r})")

        if self.method not in METHODS:
            bad("method", f"unknown method; valid methods: {', '.join(METHODS)}")
        if self.policy not in POLICIES:
            bad("policy", f"unknown policy; valid policies: {', '.join(POLICIES)}")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"unknown optimizer; valid optimizers: {', '.join(OPTIMIZERS)}")
        for name in ("num_agents", "horizon", "batch_size", "rounds", "eval_every", "eval_episodes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(name, "must be an int >= 1")
        if self.init_batch_size is not None and (
            not isinstance(self.init_batch_size, int) or self.init_batch_size < 1
        ):
            bad("init_batch_size", "must be None or an int >= 1")
        if not 0.0 <= self.discount <= 1.0:
            bad("discount", "must be in [0, 1]")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            bad("learning_rate", "must be a positive float")
        if not 0.0 < self.momentum <= 1.0:
            bad("momentum", "must be in (0, 1]")
        if self.rounds % self.eval_every:
            bad(
                "rounds",
                f"must be a multiple of eval_every={self.eval_every} (one jitted chunk per evaluation)",
            )
        if self.malenia_slack < 1.0:
            bad("malenia_slack", "must be >= 1")
        check_extra_fields(self)
