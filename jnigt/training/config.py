"""Typed training configuration, checked in plain Python before anything is traced."""

from __future__ import annotations

import dataclasses

import numpy as np
import optax

from jnigt import timing as timing_lib
from jnigt import validate

METHODS = ("rennala", "malenia", "synchronized", "afedpg")
# Inner optimizers: "nigt" (the paper) or any optax optimizer that takes a learning rate.
OPTAX_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "lion")
OPTIMIZERS = ("nigt",) + OPTAX_OPTIMIZERS
POLICIES = ("mlp", "linear")


def _times(spec, name):
    """A model name, one number, or comma-separated per-agent numbers ("1,10")."""
    if not isinstance(spec, str):
        return spec
    try:
        values = [float(v) for v in spec.split(",")]
    except ValueError:
        return spec  # a model name; jnigt.timing checks it
    if name == "step_model" and len(values) == 1:
        raise ValueError(
            f"step_model: a single number is not a model; give a model name or one number per agent (got {spec!r})"
        )
    return values[0] if len(values) == 1 else values


def _bad(config, field, msg):
    raise ValueError(f"{field}: {msg} (got {getattr(config, field)!r})")


def _name_in(allowed, what, plural):
    def check(name, value):
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"unknown {what}; valid {plural}: {', '.join(allowed)} (got {value!r})")
        return value

    return check


def _name(name, value):
    if not isinstance(value, str):
        raise TypeError(f"must be a name (str), got {value!r} ({type(value).__name__})")
    return value


def _optional_name(name, value):
    return None if value is None else _name(name, value)


def _spec(name, value):
    """A model name or numbers: a str, or a number (comma-separated numbers as a str)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(validate.real(name, v) for v in np.asarray(value).reshape(-1).tolist())
    return validate.real(name, value)


def _hidden_sizes(name, value):
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"must be a tuple of ints >= 1, got {value!r}")
    return tuple(validate.integer(name, v) for v in value)


def _int(minimum):
    return lambda name, value: validate.integer(name, value, minimum)


# one check per field, in plain Python: numbers through jnigt.validate (NumPy scalars accepted, bool refused)
_FIELD_CHECKS = {
    "env": _name,
    "backend": _optional_name,
    "method": _name_in(METHODS, "method", "methods"),
    "optimizer": _name_in(OPTIMIZERS, "optimizer", "optimizers"),
    "policy": _name_in(POLICIES, "policy", "policies"),
    "num_agents": _int(1),
    "step_model": _spec,
    "comm_model": _spec,
    "jitter": lambda name, value: validate.real(name, value, low=0.0),
    "stragglers": _int(0),
    "dead": _int(0),
    "allreduce_cost": _name,
    "horizon": _int(1),
    "discount": lambda name, value: validate.real(name, value, low=0.0, high=1.0),
    "learning_rate": validate.positive,
    "momentum": lambda name, value: validate.real(name, value, low=0.0, high=1.0, low_open=True),
    "batch_size": _int(1),
    "init_batch_size": validate.optional_integer,
    "rounds": _int(1),
    "eval_every": _int(1),
    "eval_episodes": _int(1),
    "hidden_sizes": _hidden_sizes,
    "seed": _int(-(2**63)),
    "malenia_slack": lambda name, value: validate.real(name, value, low=1.0),
    "malenia_patience": _int(1),
    "malenia_drop_after": validate.optional_integer,
}


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
    step_model: str = "sqrt"  # equal | sqrt | decreasing | random | "h_1,h_2,...,h_n"
    comm_model: str = "zero"  # zero | sqrt | sqrt_d | a number | "k_1,...,k_n"
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
    policy: str = "mlp"  # mlp (docs/algorithms.md#gpomdp) | linear (mu = W s + b, no tanh; LQR ground truth)
    seed: int = 0
    malenia_slack: float = 2.0  # slot buffer factor for Malenia under jitter
    # Malenia with an agent that only sends non-finite gradients (docs/algorithms.md#malenia):
    # stop with an error after malenia_patience such rounds, or drop the agent after
    # malenia_drop_after rounds (None = never drop).
    malenia_patience: int = 20
    malenia_drop_after: int | None = None

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
        if self.rounds % self.eval_every:
            _bad(
                self,
                "rounds",
                f"must be a multiple of eval_every={self.eval_every} (one jitted chunk per evaluation)",
            )

    @property
    def first_batch(self) -> int:
        return self.batch_size if self.init_batch_size is None else self.init_batch_size

    def make_timing(self, num_params: int | None = None) -> timing_lib.Timing:
        t = timing_lib.make_timing(
            self.num_agents,
            _times(self.step_model, "step_model"),
            _times(self.comm_model, "comm_model"),
            num_params=num_params,
            jitter=self.jitter,
            stragglers=self.stragglers,
            dead=self.dead,
            allreduce_cost=self.allreduce_cost,
        )
        timing_lib.validate_method(t, self.method)
        timing_lib.reachable(t, max(self.batch_size, self.first_batch))
        return t

    def make_policy(self, env):
        from jnigt.gradients.policy import make_policy

        if self.policy == "linear":
            return make_policy(env, hidden_sizes=(), action_scale=None, state_dependent_std=False)
        return make_policy(env, hidden_sizes=tuple(self.hidden_sizes))

    def make_optimizer(self) -> optax.GradientTransformation:
        from jnigt.transforms import nigt

        if self.optimizer == "nigt":
            return nigt(self.learning_rate, self.momentum)
        return getattr(optax, self.optimizer)(self.learning_rate)
