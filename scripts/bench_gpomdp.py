"""Env steps per second: jitted gpomdp_gradient vs raw vmapped Brax stepping with random actions.

Both run the same env, backend, batch B and horizon H inside one jitted lax.scan (reset, then H steps); each
is compiled and warmed up first, then both are timed alternately over --reps repetitions with
block_until_ready (median per call). The rate counts
B * H scheduled steps per call for both (so early termination does not flatter either side).

    python scripts/bench_gpomdp.py --env hopper --backend spring --batch 256 --horizon 100 --reps 5
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jnigt_envs
from jnigt.gradients import gpomdp_gradient, make_policy


def _raw_rollout(env, batch: int, horizon: int):
    def one(key):
        k0, k1 = jax.random.split(key)
        state = env.reset(k0)
        state = jax.tree.map(lambda x: jnp.astype(jnp.asarray(x), jnp.asarray(x).dtype), state)

        def body(st, k):
            a = jax.random.uniform(k, (env.action_size,), minval=-1.0, maxval=1.0)
            nst = env.step(st, a)
            nst = jax.tree.map(lambda n, o: jnp.astype(jnp.asarray(n), jnp.asarray(o).dtype), nst, st)
            return nst, nst.reward

        _, rewards = jax.lax.scan(body, state, jax.random.split(k1, horizon))
        return jnp.sum(rewards)

    return jax.jit(lambda key: jax.vmap(one)(jax.random.split(key, batch)))


def _time_interleaved(fns, reps: int):
    """Compile and warm up every fn, then time them alternately (robust to background load); median seconds."""
    for fn in fns:
        jax.block_until_ready(fn(0))  # compile
        jax.block_until_ready(fn(1))  # warm up
    times = [[] for _ in fns]
    for i in range(reps):
        for j, fn in enumerate(fns):
            t = time.perf_counter()
            jax.block_until_ready(fn(2 + i))
            times[j].append(time.perf_counter() - t)
    return [float(np.median(t)) for t in times], times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="hopper", choices=jnigt_envs.ENV_NAMES)
    p.add_argument("--backend", default="spring", choices=jnigt_envs.BACKENDS)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--horizon", type=int, default=100)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--num-agents", type=int, default=1)
    p.add_argument("--discount", type=float, default=0.99)
    a = p.parse_args(argv)
    for name in ("batch", "horizon", "reps", "num_agents"):
        if getattr(a, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")

    env = jnigt_envs.make_env(a.env, backend=a.backend)
    policy = make_policy(env)
    params = policy.init(jax.random.PRNGKey(0))
    agent_ids = jnp.arange(a.batch, dtype=jnp.int32) % a.num_agents
    steps = a.batch * a.horizon

    grad_fn = jax.jit(gpomdp_gradient, static_argnums=(0, 1, 5, 6))
    raw = _raw_rollout(env, a.batch, a.horizon)
    (t_grad, t_raw), _ = _time_interleaved(
        [
            lambda i: grad_fn(
                policy, env, params, jax.random.PRNGKey(i), agent_ids, a.num_agents, a.horizon, a.discount
            ),
            lambda i: raw(jax.random.PRNGKey(i)),
        ],
        a.reps,
    )

    n_params = sum(x.size for x in jax.tree.leaves(params))
    print(
        f"env={a.env} backend={a.backend} batch={a.batch} horizon={a.horizon} reps={a.reps} "
        f"policy_params={n_params} device={jax.devices()[0].platform}"
    )
    print(f"raw brax stepping : {steps / t_raw:12.0f} env steps/s  ({t_raw * 1e3:.1f} ms/call)")
    print(f"gpomdp_gradient   : {steps / t_grad:12.0f} env steps/s  ({t_grad * 1e3:.1f} ms/call)")
    print(f"ratio gpomdp/raw  : {t_raw / t_grad:.3f}")


if __name__ == "__main__":
    main()
