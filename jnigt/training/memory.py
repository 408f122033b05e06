"""Memory of one training round, estimated before anything is traced, and refused when it cannot fit.

A round samples ``S`` trajectory slots at once (vmapped; Rennala ``S = ceil(M / d)`` per device: the
method's ``plan``, ``jnigt.training.methods``), so its memory grows with the batch size, not with the
number of agents. Per slot, in ``dtype_bytes``
(4, float32) units::

    trajectory   H * (obs + 2 * act + 4)          obs, u, action, reward, alive, discount, reward-to-go
    backward     H * (2 * sum(hidden) + 2 * act)  MLP activations and their cotangents for d log pi / d theta
    env state    state                            the env's carry (default 4 * obs)
    gradient     P                                the slot's gradient pytree (P = number of parameters)

plus, per device, the aggregator's accumulators ``(A + 4) * P`` (the plan's ``A``: Malenia keeps one sum
per local agent)
and the parameters' copies. The total is multiplied by ``overhead`` (default 2: XLA keeps inputs and
outputs of a fused step alive together) and by the number of devices that share the memory pool
(host RAM for CPU devices). The formula is an upper-bound style estimate, meant to refuse hopeless
settings (a batch of 10^7 slots) with a clear message instead of an allocator traceback.
"""

from __future__ import annotations

import math

from jnigt import validate
from jnigt.training import build, methods

#: XLA indexes arrays with int32: no array may hold 2**31 elements or more.
INT32_LIMIT = 2**31 - 1
#: Default share of the available memory a run may plan to use.
DEFAULT_FRACTION = 0.8


def slot_floats(
    horizon: int, obs_size: int, action_size: int, num_params: int, hidden_sizes=(), state_size=None
):
    """Floats held per trajectory slot (see the module docstring)."""
    state = 4 * obs_size if state_size is None else state_size
    trajectory = horizon * (obs_size + 2 * action_size + 4)
    backward = horizon * (2 * sum(hidden_sizes) + 2 * action_size)
    return trajectory + backward + state + num_params


def estimate_round_bytes(
    num_slots: int,
    horizon: int,
    obs_size: int,
    action_size: int,
    num_params: int,
    *,
    hidden_sizes=(),
    local_agents: int = 1,
    num_devices: int = 1,
    state_size: int | None = None,
    dtype_bytes: int = 4,
    overhead: float = 2.0,
) -> int:
    """Bytes of one round on ``num_devices`` devices sharing one memory pool.

    ``overhead * num_devices * dtype_bytes * (num_slots * slot_floats + (local_agents + 4) * num_params)``.
    """
    num_slots = validate.integer("num_slots", num_slots)
    horizon = validate.integer("horizon", horizon)
    per_slot = slot_floats(horizon, obs_size, action_size, num_params, hidden_sizes, state_size)
    per_device = num_slots * per_slot + (local_agents + 4) * num_params
    return int(math.ceil(overhead * num_devices * dtype_bytes * per_device))


def available_bytes(fraction: float = DEFAULT_FRACTION) -> int:
    """``fraction`` of the memory available now: the accelerator's limit, or the host's free RAM (psutil)."""
    import jax

    device = jax.local_devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(fraction * (stats["bytes_limit"] - stats.get("bytes_in_use", 0)))
    import psutil

    return int(fraction * psutil.virtual_memory().available)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"


def check_memory(estimate: int, limit: int | None = None, *, what: str = "one training round") -> None:
    """Raise ValueError when ``estimate`` bytes exceed ``limit`` (default :func:`available_bytes`)."""
    limit = available_bytes() if limit is None else validate.integer("limit", limit)
    if estimate > limit:
        raise ValueError(
            f"{what} needs about {_human(estimate)} but only {_human(limit)} is available; "
            "lower batch_size, num_agents or horizon (or use more devices)"
        )


def check_round_memory(
    config,
    *,
    obs_size: int,
    action_size: int,
    num_params: int,
    plan: methods.Plan | None = None,
    num_devices: int = 1,
    limit: int | None = None,
) -> int:
    """Refuse a :class:`TrainConfig` whose rounds cannot fit; return the estimate in bytes.

    ``plan``: the method's :class:`jnigt.training.methods.Plan` on ``num_devices`` devices (the Trainer's;
    default: the method's ``plan`` of ``config``, with the clock of :func:`jnigt.training.build.make_timing`
    where the plan needs one). Raises ValueError naming batch_size / num_agents / horizon when the slots
    (over all devices) exceed int32 indexing or the estimate exceeds ``limit`` (default: 80% of the
    available memory).
    """
    c = config
    d = validate.integer("num_devices", num_devices)
    hidden = tuple(c.hidden_sizes) if c.policy == "mlp" else ()
    if plan is None:
        plan = methods.get(c.method).plan(c, d, lambda: build.make_timing(c, num_params))
    num_slots = plan.slots
    setting = (
        f"batch_size={c.batch_size}, num_agents={c.num_agents}, horizon={c.horizon} "
        f"({num_slots} trajectory slots per device, {num_params} parameters)"
    )
    if num_slots * d > INT32_LIMIT:
        raise ValueError(
            f"{setting}: {num_slots * d} slots in all is more than int32 indexing allows ({INT32_LIMIT}); "
            "lower batch_size"
        )
    estimate = estimate_round_bytes(
        num_slots,
        c.horizon,
        obs_size,
        action_size,
        num_params,
        hidden_sizes=hidden,
        local_agents=plan.accumulators,
        num_devices=d,
    )
    check_memory(estimate, limit, what=f"{setting}: one round")
    return estimate


def runs_per_call(runs: int, per_run_bytes: int, limit: int | None = None) -> int:
    """Runs per vmapped call of one (method, M) (``jnigt.experiments.sweep.EqualTimeRunner``): all ``runs``
    when ``runs * per_run_bytes`` fits in ``limit`` (default :func:`available_bytes`), else the fewest calls
    that fit, as equal as can be (``ceil(runs / calls)`` each, so the last one is padded least); at least 1
    (a single run that cannot fit is refused by :func:`check_round_memory`)."""
    runs = validate.integer("runs", runs, 1)
    per_run = max(1, validate.integer("per_run_bytes", per_run_bytes, 0))
    limit = available_bytes() if limit is None else validate.integer("limit", limit, 0)
    fit = max(1, limit // per_run)
    return -(-runs // -(-runs // fit))
