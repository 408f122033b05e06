"""Does every method drive the exact ||grad J_H|| down on the LQR instance? (jnigt/experiments/lqr_exact.py)

For one instance (env ``lqr``, the default system: open-loop stable, spectral radius 0.9; linear policy
with a fixed exploration std, W_0 = 0, b_0 = 0) it prints the instance's constants (J*_H and the Riccati
gap, sigma^2 at theta_0, L_g, L_h and D on the segment theta_0 -> theta*), then runs each method
(``--seeds`` seeds, one alpha / eta / M for all) on one equal-time grid inside EqualTimeRunner with the
exact records, and prints the median over seeds of ||grad J_H(theta_t)|| / ||grad J_H(theta_0)|| and of
J*_H - J_H(theta_t) along the grid, and the median time to each eps of a ladder (inf = not reached).

    python scripts/lqr_exact_check.py --seeds 4 --std 1.0 --step-model sqrt \
        --methods rennala,afedpg:0.005,afedpg:0.002,synchronized
    python scripts/lqr_exact_check.py --env lqr_hetero --agents 2 --step-model 1,10 --batch 4 --std 1.0 \
        --rounds 1500 --seeds 4 --methods malenia:0.05,afedpg:0.005

``--methods``: method[:alpha], alpha defaulting to ``--lr``; eta = ``--momentum`` and M = ``--batch`` for all.
With ``--env lqr_hetero`` it also prints the arrival-rate-weighted stationary point and the uniform
objective's ||grad J|| there (the floor predicted for AFedPG).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from jnigt.experiments import lqr_exact  # noqa: E402
from jnigt.experiments.sweep import EqualTimeRunner, time_grid  # noqa: E402
from jnigt.training import TrainConfig, Trainer  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="lqr", help="lqr | lqr_hetero (then also the weighted stationary point)")
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--discount", type=float, default=0.9)
    ap.add_argument("--std", type=float, default=0.3)
    ap.add_argument("--agents", type=int, default=10)
    ap.add_argument("--step-model", default="equal")
    ap.add_argument("--comm-model", default="zero")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--momentum", type=float, default=0.1)
    ap.add_argument(
        "--rounds", type=int, default=300, help="T_end = this many Rennala rounds of equal agents"
    )
    ap.add_argument("--points", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument(
        "--methods", default="rennala,afedpg,synchronized,malenia", help="method[:alpha],... (alpha: --lr)"
    )
    a = ap.parse_args(argv)

    def config(method, lr=a.lr):
        return TrainConfig(
            env=a.env,
            backend=None,
            policy="linear",
            fixed_std=a.std,
            mean_init="zeros",
            method=method,
            num_agents=a.agents,
            step_model=a.step_model,
            comm_model=a.comm_model,
            horizon=a.horizon,
            discount=a.discount,
            batch_size=a.batch,
            learning_rate=lr,
            momentum=a.momentum,
            rounds=10,
            eval_every=10,
            eval_episodes=1,
        )

    t0 = time.time()
    base = Trainer(config("rennala"), num_devices=1)
    star = lqr_exact.stationary_point(base)
    p = lqr_exact.problem(base)
    theta0 = np.asarray(p.flatten(base.eval_params(base.init(0))), np.float64)
    sigma2, se = lqr_exact.gradient_variance(base, base.eval_params(base.init(0)), 1024)
    consts = lqr_exact.smoothness(base, theta0, star.theta)
    import jax
    import jax.numpy as jnp

    g0 = float(jnp.linalg.norm(jax.grad(p.objective)(jnp.asarray(theta0, jnp.float32))))
    print(
        f"instance: H={a.horizon} gamma={a.discount} std={a.std} n={a.agents} | J*={star.value:.6f} "
        f"theta*={np.round(star.theta, 4)} |grad J*|={star.grad_norm:.1e} float32 floor={star.float32_floor:.1e} "
        f"Hessian eigs at theta*={np.round(star.hessian_eigs, 3)} Riccati gap={star.riccati_gap:.2e} "
        f"starts={np.round(star.starts, 6)}"
    )
    print(
        f"theta_0 = 0: |grad J|={g0:.3f} sigma^2={sigma2:.1f} (+-{se:.1f}) L_g={consts['L_g']:.1f} "
        f"L_h={consts['L_h']:.1f} D={consts['D']:.4f}  [{time.time() - t0:.0f} s]",
        flush=True,
    )
    if a.env == "lqr_hetero":
        w = lqr_exact.arrival_rate_weights(base.timing, a.horizon)
        weighted = lqr_exact.stationary_point(base, weights=w)
        floor = lqr_exact.gradient_norm(base, weighted.theta)
        print(
            f"arrival-rate weights {np.round(w, 4)}: weighted stationary point {np.round(weighted.theta, 4)}, "
            f"|grad J| of the uniform objective there = {floor:.4f} ({floor / g0:.2e} of |grad J(theta_0)|)",
            flush=True,
        )
    t_end = a.rounds * a.horizon * max(1.0, a.batch / a.agents)  # Rennala rounds of equal agents, h = 1
    times = time_grid(t_end, a.points)
    eps = g0 * np.logspace(-0.5, -2.5, 7)
    seeds = np.arange(a.seeds)
    for spec in a.methods.split(","):
        method, _, lr = spec.partition(":")
        lr = float(lr) if lr else a.lr
        t1 = time.time()
        tr = Trainer(config(method, lr), num_devices=1)
        runner = EqualTimeRunner(tr, extra_records=lqr_exact.exact_records(tr, star.value))
        runs = runner(seeds, lr, a.momentum, times)
        gn = runs.extra["exact_grad_norm"] / g0
        gap = runs.extra["exact_gap"]
        tte = lqr_exact.time_to_eps(times, runs.extra["exact_grad_norm"], eps)
        print(
            f"{method} alpha={lr}: rounds at T_end {np.median(runs.rounds[:, -1]):.0f}  [{time.time() - t1:.0f} s]"
        )
        print("  t          " + " ".join(f"{t:9.0f}" for t in times))
        print("  |g|/|g0|   " + " ".join(f"{v:9.2e}" for v in np.median(gn, 0)))
        print("  J*-J       " + " ".join(f"{v:9.2e}" for v in np.median(gap, 0)))
        print("  eps/|g0|   " + " ".join(f"{e / g0:9.2e}" for e in eps))
        print(
            "  T(eps) med " + " ".join(f"{v:9.0f}" for v in lqr_exact.quantiles(tte, (0.5,))[0]), flush=True
        )


if __name__ == "__main__":
    main()
