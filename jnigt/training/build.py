"""Builders: what a :class:`~jnigt.training.config.TrainConfig` names, made into objects.

``make_timing`` (the simulated clock, docs/algorithms.md#simulated-time), ``make_policy`` and
``make_optimizer`` (the inner optimizer with its hyperparameters in the state, through
``optax.inject_hyperparams``, so that ``jax.vmap`` over states sweeps them).
"""

from __future__ import annotations

import optax

from jnigt import timing as timing_lib
from jnigt import validate
from jnigt.gradients import policy as policy_lib
from jnigt.transforms import nigt

# Inner optimizers: "nigt" (the paper) or any optax optimizer that takes a learning rate.
OPTAX_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "lion")
OPTIMIZERS = ("nigt",) + OPTAX_OPTIMIZERS
POLICIES = ("mlp", "linear")
MEAN_INITS = ("lecun_normal", "zeros")
TIME_UNITS = timing_lib.TIME_UNITS
CHARGES = timing_lib.CHARGES


def parse_times(spec, name: str):
    """A step or communication model: a model name, one number, or per-agent numbers.

    Strings of comma-separated numbers ("1,10") become tuples of floats (the command line's
    spelling); a single number is a float (not allowed for ``step_model``, which needs a model
    name or one number per agent). Anything else is returned as is for ``jnigt.timing`` to check.
    """
    if isinstance(spec, str):
        try:
            values = tuple(float(v) for v in spec.split(","))
        except ValueError:
            return spec  # a model name; jnigt.timing checks it
    elif isinstance(spec, (tuple, list)):
        values = tuple(spec)
    else:
        return spec
    if name == "step_model" and len(values) == 1:
        raise ValueError(
            f"step_model: a single number is not a model; give a model name or one number per agent (got {spec!r})"
        )
    return values[0] if len(values) == 1 else values


def first_batch(config) -> int:
    """M_init: the first round's batch (``init_batch_size``, default ``batch_size``)."""
    return config.batch_size if config.init_batch_size is None else config.init_batch_size


def make_timing(config, num_params: int | None = None) -> timing_lib.Timing:
    """The simulated clock of ``config``, checked for the method (every round must be able to close)."""
    t = timing_lib.make_timing(
        config.num_agents,
        parse_times(config.step_model, "step_model"),
        parse_times(config.comm_model, "comm_model"),
        num_params=num_params,
        jitter=config.jitter,
        stragglers=config.stragglers,
        dead=config.dead,
        allreduce_cost=config.allreduce_cost,
        time_unit=config.time_unit,
        charge=config.charge,
    )
    from jnigt.training.methods import get

    module = get(config.method)
    timing_lib.check_progress(t, module.WAITS_FOR_EVERY_AGENT, module.LABEL)
    timing_lib.reachable(t, max(config.batch_size, first_batch(config)))
    return t


def policy_kwargs(config) -> dict:
    """``GaussianPolicy`` keyword arguments of ``config.policy``: "mlp" (tanh MLP, ``hidden_sizes``) or
    "linear" (``mu = W s + b``, no squashing: the LQR ground truth), with ``fixed_std`` and ``mean_init``
    when they are not the defaults."""
    if config.policy == "linear":
        kw = dict(hidden_sizes=(), action_scale=None, state_dependent_std=False)
    else:
        kw = dict(hidden_sizes=tuple(config.hidden_sizes))
    if config.fixed_std is not None:
        kw.update(fixed_std=config.fixed_std, state_dependent_std=False)
    if config.mean_init != "lecun_normal":
        kw.update(mean_init=config.mean_init)
    return kw


def make_policy(config, env):
    """The Gaussian policy of ``config`` (:func:`policy_kwargs`) sized for ``env``."""
    return policy_lib.make_policy(env, **policy_kwargs(config))


def make_optimizer(name: str, learning_rate, momentum=None) -> optax.GradientTransformationExtraArgs:
    """``optax.inject_hyperparams`` around the inner optimizer ``name``.

    nigt(alpha, eta) takes ``learning_rate`` = alpha and ``momentum`` = eta; an optax optimizer
    takes ``learning_rate`` only. The hyperparameters (Python floats or float arrays, also traced)
    live in ``state.hyperparams``, so ``jax.vmap`` over states sweeps them.
    """
    if validate.one_of("optimizer", name, OPTIMIZERS) == "nigt":
        return optax.inject_hyperparams(nigt)(learning_rate=learning_rate, momentum=momentum)
    if momentum is not None:
        raise ValueError(f"momentum: applies to optimizer nigt only (optimizer={name!r})")
    return optax.inject_hyperparams(getattr(optax, name))(learning_rate=learning_rate)
