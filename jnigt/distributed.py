"""Devices and hosts in one place: the ``agents`` mesh axis and ``jax.distributed`` start-up.

The AllReduce of a round is the aggregator's ``jax.lax.psum`` over :data:`AXIS`. On one host the
mesh holds the local devices; after :func:`initialize` it holds every process's devices, so the
same training code runs on 1 CPU, 8 devices, or several hosts.
"""

from __future__ import annotations

import os

import jax

AXIS = "agents"


def make_agent_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh named ``agents`` over the first ``num_devices`` devices (default: all, every process)."""
    available = jax.device_count()
    if num_devices is None:
        num_devices = available
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(f"num_devices must be a positive int, got {num_devices!r}")
    if num_devices > available:
        raise ValueError(
            f"num_devices={num_devices} but only {available} devices are visible "
            f"({jax.process_count()} process(es)); on CPU set "
            "XLA_FLAGS=--xla_force_host_platform_device_count=N before jax starts"
        )
    devices = jax.devices()[:num_devices]
    return jax.sharding.Mesh(devices, (AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def initialize(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> bool:
    """Start JAX's multi-host runtime when asked (arguments or JNIGT_COORDINATOR /
    JNIGT_NUM_PROCESSES / JNIGT_PROCESS_ID); return whether it was started.

    On CPU the cross-process collectives go through gloo. Does nothing for a single process.
    """
    coordinator = coordinator or os.environ.get("JNIGT_COORDINATOR")
    if num_processes is None and "JNIGT_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["JNIGT_NUM_PROCESSES"])
    if process_id is None and "JNIGT_PROCESS_ID" in os.environ:
        process_id = int(os.environ["JNIGT_PROCESS_ID"])
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if not any(given):
        return False
    if not all(given):
        raise ValueError(
            "multi-host needs all three of coordinator (host:port), num_processes and process_id; "
            f"got coordinator={coordinator!r}, num_processes={num_processes!r}, process_id={process_id!r}"
        )
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(
            f"process_id must be in [0, num_processes); got process_id={process_id}, "
            f"num_processes={num_processes}"
        )
    if num_processes == 1:
        return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
    if jax.process_count() != num_processes:
        raise ValueError(
            f"process count mismatch: asked for {num_processes} processes, the runtime has "
            f"{jax.process_count()}"
        )
    return True


def is_writer() -> bool:
    """Process 0 writes metrics, checkpoints and plots."""
    return jax.process_index() == 0
