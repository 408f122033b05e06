"""Devices and hosts in one place: the ``agents`` mesh axis and ``jax.distributed`` start-up.

The AllReduce of a round is the aggregator's ``jax.lax.psum`` over :data:`AXIS`. On one host the
mesh holds the local devices; after :func:`initialize` it holds every process's devices, so the
same training code runs on 1 CPU, 8 devices, or several hosts.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from jnigt import validate

AXIS = "agents"


def make_agent_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh named ``agents`` over the first ``num_devices`` devices (default: all, every process)."""
    available = jax.device_count()
    if num_devices is None:
        num_devices = available
    num_devices = validate.integer("num_devices", num_devices)
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


def process_mesh() -> jax.sharding.Mesh:
    """A 1-D ``agents`` mesh with one device per process: for computations without a collective
    (AFedPG), replicated so that every process holds the same global state."""
    devices = np.array([jax.local_devices(process_index=i)[0] for i in range(jax.process_count())])
    return jax.sharding.Mesh(devices, (AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def replicate(tree, mesh: jax.sharding.Mesh):
    """The same host value on every device of ``mesh``, as global arrays (every process must hold
    the same value: the state is built from the seed). PRNG keys keep their type."""
    sharding = jax.sharding.NamedSharding(mesh, P())

    def replicate_leaf(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            key_data = replicate_leaf(jax.random.key_data(x))
            return jax.random.wrap_key_data(key_data, impl=jax.random.key_impl(x))
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(replicate_leaf, tree)


#: A :func:`map_over_agents` spec: the same value on every device.
REPLICATED = P()
#: A :func:`map_over_agents` spec: one value per device, its own (an aggregator's state). Outside the map
#: the values are stacked on a leading device axis (:func:`first_device` reads device 0's); inside,
#: ``fn`` sees its device's value without that axis.
PER_DEVICE = type("PerDevice", (), {"__repr__": lambda self: "PER_DEVICE"})()


def first_device(tree):
    """Device 0's value of a :data:`PER_DEVICE` tree, outside the map."""
    return jax.tree.map(lambda x: x[0], tree)


def device_index():
    """Inside :func:`map_over_agents`: this device's index on the ``agents`` axis."""
    return jax.lax.axis_index(AXIS)


def devices_in_map() -> int:
    """Inside :func:`map_over_agents`: the number of devices on the ``agents`` axis."""
    return jax.lax.axis_size(AXIS)


def device_block(x, size: int):
    """Inside :func:`map_over_agents`: this device's block ``x[i size : (i + 1) size]`` of ``x``'s leading axis."""
    return jax.lax.dynamic_slice_in_dim(x, device_index() * size, size)


def gather_blocks(x):
    """Inside :func:`map_over_agents`: every device's ``x`` concatenated along the leading axis, in device order."""
    return jax.lax.all_gather(x, AXIS, tiled=True)


def all_reduce(tree):
    """Inside :func:`map_over_agents`: the sum over the devices of ``tree`` (the round's AllReduce)."""
    return jax.lax.psum(tree, AXIS)


def map_over_agents(fn, mesh: jax.sharding.Mesh, in_specs, out_specs, use_pmap: bool = False):
    """Run ``fn`` once per device of ``mesh``: ``jax.shard_map`` (main path) or ``jax.pmap`` (legacy).

    Specs are :data:`REPLICATED`, ``P(AXIS)`` (a leading axis split into one block per device) or
    :data:`PER_DEVICE`, one per positional argument / output; under pmap the same block layout is kept.
    """
    own_in = tuple(s is PER_DEVICE for s in in_specs)
    own_out = tuple(s is PER_DEVICE for s in out_specs)
    if any(own_in + own_out):
        inner = fn

        def fn(*args):
            args = tuple(first_device(a) if own else a for a, own in zip(args, own_in))
            outs = inner(*args)
            return tuple(jax.tree.map(lambda x: x[None], o) if own else o for o, own in zip(outs, own_out))

        in_specs = tuple(P(AXIS) if own else s for s, own in zip(in_specs, own_in))
        out_specs = tuple(P(AXIS) if own else s for s, own in zip(out_specs, own_out))
    if not use_pmap:
        return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    in_axes = tuple(0 if s == P(AXIS) else None for s in in_specs)
    out_axes = tuple(0 for _ in out_specs)
    d = mesh.devices.size

    def unwrap(_, *args):
        return fn(*args)

    # a dummy mapped argument: pmap needs one even when every input is replicated
    mapped = jax.pmap(
        unwrap, axis_name=AXIS, in_axes=(0,) + in_axes, out_axes=out_axes, devices=list(mesh.devices.ravel())
    )
    # same layout as shard_map: a P(AXIS) array [d * k, ...] is d blocks [k, ...]
    split = lambda x: x.reshape((d, x.shape[0] // d) + x.shape[1:])
    merge = lambda x: x.reshape((d * x.shape[1],) + x.shape[2:])

    def call(*args):
        args = tuple(jax.tree.map(split, a) if s == P(AXIS) else a for a, s in zip(args, in_specs))
        outs = mapped(jnp.zeros((d,), jnp.int32), *args)
        return tuple(
            jax.tree.map(merge, o) if s == P(AXIS) else jax.tree.map(lambda x: x[0], o)
            for o, s in zip(outs, out_specs)
        )

    return call
