"""Reproduce the paper's heterogeneous experiment (SPEC section 6, project issue 6 part 4).

Malenia NIGT against AFedPG with n = 2 agents, h = (1, 10) (step_model "1,10"), kappa = 0, on
'mirrored_<env>': agent 0 observes (s, 0), agent 1 observes (-s, 1), so the two agents optimise different
local objectives and the goal is their average. Same gradient budget for both methods: Malenia's
harmonic-mean rule makes the fast agent deliver more than M gradients per round (with h = (1, 10), M = 20:
see malenia_gradients_per_round), so AFedPG runs rounds * (gradients per Malenia round) single arrivals. Outputs under --out (default runs/paper):

    <out>/runs/mirrored_<env>/hetero/n2/<method>/seed<k>/   metrics.jsonl + config.json
    <out>/figures/hetero_mirrored_<env>.png              return vs simulated time, median + 20-80% band
    <out>/hetero_summary.csv                             one row per env x method (same columns as
                                                         reproduce_paper's summary.csv; scenario 'hetero')

Hyperparameters: the same grid point as reproduce_paper (eta = 0.1, alpha = 2^-5, M = M_init = 20).
Time to threshold and ``ref_ttt_ratio`` are as in reproduce_paper, with Malenia NIGT as the reference
(Malenia NIGT's time-to-threshold / this method's).

Sizes: tiny (mirrored_fast, a few rounds, 1 seed; for the test), cpu (default: mirrored_inverted_pendulum,
spring backend, 30 rounds, 2 seeds; sized for the shared 2-core CPU), full (mirrored humanoid, reacher, walker2d, hopper; 5 seeds;
for a GPU).

Usage:
    PYTHONPATH=. python scripts/reproduce_heterogeneous.py [--size tiny|cpu|full] [--out runs/paper]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
if os.path.dirname(HERE) not in sys.path:
    sys.path.insert(0, os.path.dirname(HERE))

import reproduce_paper as rp  # noqa: E402  (shared helpers; the training loop is jnigt.training.train)

STEP_MODEL = "1,10"
COMM_MODEL = "zero"
METHODS = ("malenia", "afedpg")

SIZES = {
    "tiny": [
        rp.EnvRun("mirrored_fast", None, horizon=8, rounds=4, eval_every=2, ns=(2,), seeds=1, eval_episodes=2)
    ],
    "cpu": [
        rp.EnvRun(
            "mirrored_inverted_pendulum", "spring", horizon=64, rounds=30, eval_every=10, ns=(2,), seeds=2
        ),
    ],
    "full": [
        rp.EnvRun(
            f"mirrored_{e}",
            "spring",
            horizon=1000,
            rounds=500,
            eval_every=25,
            ns=(2,),
            seeds=5,
            eval_episodes=16,
        )
        for e in ("humanoid", "reacher", "walker2d", "hopper")
    ],
}


def malenia_gradients_per_round(horizon: int, batch: int = rp.BATCH) -> int:
    """Gradients a Malenia round collects with h = (1, 10) (fixed times): AFedPG gets as many per round."""
    from jnigt import timing as timing_lib

    t = timing_lib.make_timing(2, [float(v) for v in STEP_MODEL.split(",")], COMM_MODEL)
    return int(timing_lib.malenia_max_per_agent(t, horizon, batch).sum())


def main(argv: Sequence[str] | None = None) -> int:
    args = rp._parse(
        argv, "Malenia NIGT vs AFedPG, n=2, h=(1,10), mirrored observations.", os.path.join("runs", "paper")
    )
    envs = SIZES[args.size]
    if args.envs:
        keep = set(args.envs.split(","))
        envs = [e for e in envs if e.env in keep or e.env[len("mirrored_") :] in keep]
    rp.enable_compile_cache(args.out)
    print(
        f"reproduce_heterogeneous: size={args.size} out={args.out} h=({STEP_MODEL}) kappa=0 "
        f"eta={rp.ETA} alpha={rp.ALPHA} M=M_init={rp.BATCH}"
    )
    for e in envs:
        print(
            f"  {e.env} ({e.backend}): H={e.horizon} rounds={e.rounds} (AFedPG: rounds x gradients per Malenia "
            f"round) eval_every={e.eval_every} seeds={args.seeds or e.seeds}"
        )
    sys.stdout.flush()
    all_rows, pngs = [], []
    csv_path = os.path.join(args.out, "hetero_summary.csv")
    t_start = time.time()
    for e in envs:
        title = f"{e.env}, n=2, h=(1,10), Malenia NIGT vs AFedPG"
        g = malenia_gradients_per_round(e.horizon)
        print(
            f"  Malenia NIGT uses {g} gradients per round (fixed times); AFedPG gets {e.rounds * g} arrivals",
            flush=True,
        )
        rows, png = rp.run_panel(
            e,
            "hetero",
            STEP_MODEL,
            COMM_MODEL,
            2,
            METHODS,
            args.seeds or e.seeds,
            args.out,
            title,
            "malenia",
            log=lambda s: print(s, flush=True),
            afedpg_scale=g,
        )
        final_png = os.path.join(args.out, "figures", f"hetero_{e.env}.png")
        os.replace(png, final_png)
        all_rows.extend(rows)
        pngs.append(final_png)
        rp.write_csv(csv_path, all_rows)
        print(f"[{time.time() - t_start:.0f} s] figure {final_png}", flush=True)
    return rp.report_outputs(csv_path, all_rows, pngs)


if __name__ == "__main__":
    sys.exit(main())
