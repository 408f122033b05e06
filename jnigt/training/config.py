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
    """a jnigt_envs name (e.g. inverted_pendulum, hopper, mirrored_inverted_pendulum, lqr, fast)"""
    backend: str | None = "spring"
    """brax backend: spring, generalized, positional, mjx; None for jnigt's own envs"""
    method: str = "rennala"
    """rennala | malenia | synchronized | afedpg (docs/algorithms.md)"""
    optimizer: str = "nigt"
    """inner optimizer: nigt, or an optax optimizer: sgd, adam, adamw, rmsprop, adagrad, lion"""
    num_agents: int = 10
    """n, the number of simulated agents"""
    step_model: str | tuple[float, ...] = "sqrt"
    """h_i, seconds per env step: equal | sqrt | decreasing | random, or one number per agent ("1,10")"""
    comm_model: str | float | tuple[float, ...] = "zero"
    """kappa_i, communication time: zero | sqrt | sqrt_d | one number | one number per agent"""
    jitter: float = 0.0
    """sigma of the lognormal per-trajectory time factor (0 = fixed times)"""
    stragglers: int = 0
    """agents made 100x slower"""
    dead: int = 0
    """agents with infinite step time"""
    allreduce_cost: str = "max"
    """charge of a closed round: max (max_i kappa_i) | arrived | none"""
    horizon: int = 64
    """H, steps per trajectory"""
    discount: float = 0.99
    """gamma"""
    learning_rate: float = 2.0**-5
    """alpha"""
    momentum: float = 0.1
    """eta in (0, 1] (nigt only; 1 = no momentum)"""
    batch_size: int = 20
    """M, gradients per round"""
    init_batch_size: int | None = None
    """M_init, gradients in the first round (default: M)"""
    rounds: int = 50
    """steps to run (AFedPG: arrivals)"""
    eval_every: int = 10
    """steps per jitted chunk; one evaluation after each"""
    eval_episodes: int = 16
    """episodes per evaluation"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """hidden layers of the mlp policy"""
    policy: str = "mlp"
    """mlp (tanh MLP Gaussian policy) | linear (mu = W s + b, no tanh; the LQR ground truth)"""
    seed: int = 0
    """PRNG seed of the run"""
    malenia_slack: float = 2.0
    """slot buffer factor for Malenia under jitter (>= 1)"""
    time_unit: str = "step"
    """step: h_i per env step | trajectory: h_i per gradient (docs/algorithms.md#simulated-time)"""

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
