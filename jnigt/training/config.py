"""Typed training configuration (plain data), checked in plain Python before anything is traced.

What it names is built by ``jnigt.training.build`` (timing, policy, optimizer) and
``jnigt.training.methods`` (the method).
"""

from __future__ import annotations

import dataclasses
from functools import partial

import numpy as np

from jnigt import validate
from jnigt.gradients.obs_norm import OBS_NORMS
from jnigt.timing import ALLREDUCE_COSTS, check_charge
from jnigt.training.build import CHARGES, MEAN_INITS, OPTIMIZERS, POLICIES, TIME_UNITS
from jnigt.training.divergence import ON_DIVERGENCE
from jnigt.training.methods import METHODS


def _bad(config, field, msg):
    raise ValueError(f"{field}: {msg} (got {getattr(config, field)!r})")


def _optional(check):
    return lambda name, value: None if value is None else check(name, value)


def _spec(name, value):
    """A model name or numbers: a str, or a number (comma-separated numbers as a str)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(validate.real(name, v) for v in np.asarray(value).reshape(-1).tolist())
    return validate.real(name, value)


# one check per field, in plain Python: numbers through jnigt.validate (NumPy scalars accepted, bool refused)
_FIELD_CHECKS = {
    "env": validate.text,
    "backend": _optional(validate.text),
    "method": partial(validate.one_of, allowed=tuple(METHODS)),
    "optimizer": partial(validate.one_of, allowed=OPTIMIZERS),
    "policy": partial(validate.one_of, allowed=POLICIES),
    "fixed_std": validate.optional_positive,
    "mean_init": partial(validate.one_of, allowed=MEAN_INITS),
    "num_agents": validate.integer,
    "step_model": _spec,
    "comm_model": _spec,
    "jitter": partial(validate.real, low=0.0),
    "stragglers": partial(validate.integer, minimum=0),
    "dead": partial(validate.integer, minimum=0),
    "allreduce_cost": partial(validate.one_of, allowed=ALLREDUCE_COSTS),
    "horizon": validate.integer,
    "discount": validate.probability,
    "learning_rate": validate.positive,
    "momentum": partial(validate.real, low=0.0, high=1.0, low_open=True),
    "batch_size": validate.integer,
    "init_batch_size": validate.optional_integer,
    "rounds": validate.integer,
    "eval_every": validate.integer,
    "eval_episodes": validate.integer,
    "hidden_sizes": validate.integers,
    "seed": partial(validate.integer, minimum=-(2**63)),
    "malenia_slack": partial(validate.real, low=1.0),
    "malenia_patience": validate.integer,
    "malenia_drop_after": validate.optional_integer,
    "time_unit": partial(validate.one_of, allowed=TIME_UNITS),
    "charge": partial(validate.one_of, allowed=CHARGES),
    "end_time": validate.optional_positive,
    "obs_norm": partial(validate.one_of, allowed=OBS_NORMS),
    "obs_norm_episodes": validate.integer,
    "on_divergence": partial(validate.one_of, allowed=ON_DIVERGENCE),
    "stall_rounds": validate.optional_integer,
}


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
    """h_i, seconds per unit of work: equal | sqrt | decreasing | random, or one number per agent ("1,10")"""
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
    """mlp (tanh MLP Gaussian policy, docs/algorithms.md#gpomdp) | linear (mu = W s + b, no tanh; LQR ground truth)"""
    fixed_std: float | None = None
    """None: the exploration std is learned | a number: std fixed at it, gradients over the mean only (the
    exact LQR studies, jnigt/experiments/lqr_exact.py)"""
    mean_init: str = "lecun_normal"
    """kernel initialiser of the policy's mean layer: lecun_normal (flax's default) | zeros (linear: W_0 = 0)"""
    seed: int = 0
    """PRNG seed of the run"""
    malenia_slack: float = 2.0
    """slot buffer factor for Malenia under jitter (>= 1)"""
    malenia_patience: int = 20
    """Malenia/synchronized: stop with an error after this many rounds in which an agent sent only non-finite
    gradients (docs/algorithms.md#malenia)"""
    malenia_drop_after: int | None = None
    """Malenia: drop such an agent from the objective after this many rounds instead (None = never)"""
    time_unit: str = "step"
    """step: h_i per env step | trajectory: h_i per gradient (docs/algorithms.md#simulated-time)"""
    charge: str = "horizon"
    """time_unit step: what a trajectory costs: horizon (H h_i, also after early termination) | taken (the L
    steps it took, L h_i; rounds then sample candidate trajectories first, docs/algorithms.md#simulated-time)"""
    end_time: float | None = None
    """stop after the first chunk whose simulated time reaches end_time (rounds is then an upper bound; an
    equal-time comparison of methods is jnigt compare, jnigt/experiments/sweep.py)"""
    obs_norm: str = "off"
    """off: the policy sees raw observations | initial: (s - mean) / std clipped to [-10, 10], mean and std
    fixed by a rollout of the initial policy, kept in the state (docs/algorithms.md#obs-norm); every method alike"""
    obs_norm_episodes: int = 64
    """obs_norm=initial: trajectories of the initial rollout (episode e run by agent e mod n; not charged to
    the simulated clock)"""
    on_divergence: str = "error"
    """error | warn: what a run does, checked after every chunk (jnigt.training.divergence), when its returns,
    grad_norm or parameters become non-finite or its parameters stall: stop with an error naming the settings to
    change (horizon, learning rate, initial policy), or warn once and go on. Sweeps flag such runs instead"""
    stall_rounds: int | None = 20
    """a run whose parameters have not changed for this many rounds (compared after each chunk) has stalled
    (see on_divergence); None: never"""

    def __post_init__(self):
        """Check every field in plain Python (jnigt.validate) and store NumPy scalars as Python ones."""
        for name, check in _FIELD_CHECKS.items():
            value = getattr(self, name)
            try:
                value = check(name, value)
            except (TypeError, ValueError) as e:
                msg = str(e)
                msg = msg[len(name) :].lstrip() if msg.startswith(name + " ") else msg
                raise type(e)(f"{name}: {msg}") from None
            object.__setattr__(self, name, value)
        check_charge(self.charge, self.time_unit)
        if self.rounds % self.eval_every:
            _bad(
                self,
                "rounds",
                f"must be a multiple of eval_every={self.eval_every} (one jitted chunk per evaluation)",
            )
