"""Test set-up, before jax initialises its backend: 8 host CPU devices, and XLA's optimisations off.

The tests run tiny environments and horizons, so their time is almost all XLA compilation; with
``JAX_DISABLE_MOST_OPTIMIZATIONS`` a test file compiles about a third faster (tests/test_obs_norm.py and
tests/test_charge.py: 248 s -> 161 s here). Results then differ from optimised builds by float rounding
only, which is why comparisons between differently compiled programs (vmapped against single runs, 1 against
8 devices) use tolerances. Subprocesses (two-process tests) inherit the setting. XLA's CPU code generation is pinned to AVX2 with its
platform-dependent math off (the pin of jnigt/experiments/reproducible.py), so bitwise pins
(tests/test_checksums.py) hold on any x86-64 host with AVX2.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8 --xla_cpu_max_isa=AVX2"
    " --xla_cpu_enable_platform_dependent_math=false"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
