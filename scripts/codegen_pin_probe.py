"""Do XLA's CPU code-generation flags change a tiny run's numbers? (jnigt.experiments.reproducible)

Runs Rennala NIGT and AFedPG (inverted_pendulum spring, H = 50, n = 4, M = 8, 4 seeds, 10 Rennala rounds,
5 grid points; EqualTimeRunner) in THIS process with the ``XLA_FLAGS`` it was started with, and prints a
hash of the raw bytes of every record (eval returns, env steps) plus a hash of a small matmul/tanh/exp/log1p
program. Start it in separate processes with different flags and compare the hashes, e.g.:

    for f in "" "--xla_cpu_max_isa=AVX2" "--xla_cpu_max_isa=AVX2 --xla_cpu_enable_platform_dependent_math=false"; do
      XLA_FLAGS="$f" JAX_PLATFORMS=cpu python scripts/codegen_pin_probe.py; done
"""

import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jnigt.experiments import panels, protocol  # noqa: E402
from jnigt.experiments.sweep import EqualTimeRunner, time_grid  # noqa: E402


def main() -> int:
    t0 = time.time()
    p = panels.Panel(
        name="probe",
        title="probe",
        env="inverted_pendulum",
        num_agents=4,
        step_model="sqrt",
        comm_model="sqrt",
        methods=("rennala", "afedpg"),
        horizon=50,
        rounds=10,
        eval_episodes=4,
    )
    out, times = [], None
    for m in p.methods:
        r = EqualTimeRunner(protocol.make_trainer(p, m, 8))
        if times is None:
            times = time_grid(protocol.end_time(r.trainer, p.rounds), 5)
        g = r(np.arange(4), 2.0**-4, 0.1, times)
        out.append(np.concatenate([g.eval_return.ravel(), g.env_steps.ravel().astype(np.float32)]))
        print(
            m,
            "median final",
            float(np.median(g.eval_return[:, -1])),
            "env_steps",
            g.env_steps[:, -1].tolist(),
        )
    x = jax.random.normal(jax.random.key(0), (257, 129))
    w = jax.random.normal(jax.random.key(1), (129, 64))
    small = x[:64, :64]
    micro = np.asarray(
        jnp.tanh(x @ w).sum(0) + jnp.exp(-(small**2)).sum(0) + jnp.log1p(jnp.abs(small)).sum(0)
    )
    run = hashlib.sha256(np.concatenate(out).tobytes()).hexdigest()[:16]
    print(
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} run_hash={run} "
        f"micro_hash={hashlib.sha256(micro.tobytes()).hexdigest()[:16]} wall={time.time() - t0:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
