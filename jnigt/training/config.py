"""Typed training configuration, checked in plain Python before anything is traced."""

from __future__ import annotations

import dataclasses
import math

import optax

from jnigt import timing as timing_lib

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
