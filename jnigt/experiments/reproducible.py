"""Results that do not depend on the host: XLA's CPU code-generation target pinned, the machine recorded.

XLA's CPU compiler generates code for the instruction set of the host it runs on (AVX-512 where the CPU has
it, AVX2 elsewhere), so the same program gives results that differ in the last bits from one machine to
another, and chaotic RL rollouts amplify that into different curves. :func:`pin_codegen` caps the target at
one instruction set (``--xla_cpu_max_isa``, default :data:`DEFAULT_ISA`, which every x86-64 CPU of the last
decade has) and turns XLA's platform-dependent math off (``--xla_cpu_enable_platform_dependent_math=false``:
"faster code at the expense of consistent results across CPUs", in XLA's words) before jax initialises its
backend; the experiment commands (``jnigt sweep``, ``compare``, ``reproduce``) call it first. XLA reads ``XLA_FLAGS`` once, when the backend starts, so a process whose
backend already runs with other flags cannot be pinned: :func:`pin_codegen` then refuses in one line.

Off-switch: ``JNIGT_XLA_ISA=native`` (or ``off``) compiles for the host as plain jax does; any other value
is the instruction set to pin (XLA's names: ``SSE4_2``, ``AVX``, ``AVX2``, ``AVX512``, ...). A flag already
in ``XLA_FLAGS`` is kept as given. Only x86-64 hosts are pinned (XLA's names for
other CPUs differ). What is still host-dependent (thread counts, library kernels that dispatch on the CPU at
run time, accelerators) is why :func:`machine` is recorded beside every result (``machine`` in
``<panel>_chosen.json`` and ``walls.json``).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform

#: Environment variable that sets (or switches off) the pinned instruction set.
ENV = "JNIGT_XLA_ISA"
DEFAULT_ISA = "AVX2"
FLAG = "--xla_cpu_max_isa"
#: The other pinned flag and its value.
MATH_FLAG, MATH_VALUE = "--xla_cpu_enable_platform_dependent_math", "false"
#: Values of :data:`ENV` that leave the code generation to the host.
NATIVE = ("native", "off", "none", "")
#: CPU flags (``/proc/cpuinfo``) that decide XLA's CPU code generation.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile")
#: Libraries whose versions are recorded.
LIBRARIES = ("jax", "jaxlib", "brax", "optax", "flax", "numpy")


def _backend_started() -> bool:
    from jax._src import xla_bridge

    started = getattr(xla_bridge, "backends_are_initialized", None)  # private: jax 0.10 has it
    return started() if started is not None else bool(getattr(xla_bridge, "_backends", {}))


def _flag_value(xla_flags: str, flag: str = FLAG) -> str | None:
    """The value of the last ``flag=value`` in an ``XLA_FLAGS`` string (None when absent)."""
    values = [f.split("=", 1)[1] for f in xla_flags.split() if f.startswith(flag + "=")]
    return values[-1] if values else None


def wanted_isa() -> str | None:
    """The instruction set to pin: ``$JNIGT_XLA_ISA`` or :data:`DEFAULT_ISA`; None: native (or not x86-64)."""
    isa = os.environ.get(ENV, DEFAULT_ISA).strip()
    if isa.lower() in NATIVE or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    return isa.upper()


def pin_codegen() -> str | None:
    """Cap XLA's CPU code generation at :func:`wanted_isa` and turn platform-dependent math off, by adding
    :data:`FLAG` and :data:`MATH_FLAG` to ``XLA_FLAGS`` (each unless already there) before jax starts its
    backend. Returns the instruction set in force (None: native code).

    Raises ValueError when jax's backend already runs without them (they cannot change any more): call it
    before the first jax computation, or set ``JNIGT_XLA_ISA=native``.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    isa = wanted_isa()
    if isa is None:
        return _flag_value(flags)
    missing = [f"{k}={v}" for k, v in ((FLAG, isa), (MATH_FLAG, MATH_VALUE)) if _flag_value(flags, k) is None]
    if not missing:
        return _flag_value(flags)
    if _backend_started():
        raise ValueError(
            f"{ENV}: jax's backend already started with XLA_FLAGS={flags!r}, without {' '.join(missing)}, so "
            f"the CPU code generation can no longer be pinned; pin before the first jax computation "
            f"(a new process) or set {ENV}=native"
        )
    os.environ["XLA_FLAGS"] = " ".join([flags, *missing]).strip()
    return _flag_value(os.environ["XLA_FLAGS"])


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """The CPU's model name and which of :data:`ISA_FLAGS` it has (``platform`` where /proc is absent)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return dict(model=model, arch=platform.machine(), isa={f: f in flags for f in ISA_FLAGS})


def machine() -> dict:
    """What a result's numbers may depend on: CPU model and ISA flags, cores, ``XLA_FLAGS``, the pinned
    instruction set, ``JAX_*`` environment variables, jax's devices (when started) and library versions."""
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            versions[lib] = None
    out = dict(
        cpu=cpu_info(),
        cpu_count=os.cpu_count(),
        xla_flags=os.environ.get("XLA_FLAGS", ""),
        pinned_isa=_flag_value(os.environ.get("XLA_FLAGS", "")),
        jax_env={k: v for k, v in sorted(os.environ.items()) if k.startswith("JAX_") or k == ENV},
        versions=versions,
        python=platform.python_version(),
    )
    if _backend_started():
        import jax

        out["devices"] = sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()})
        out["device_count"] = jax.device_count()
    return out
