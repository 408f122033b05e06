"""Expected run time of ``jnigt reproduce --size SIZE``, panel by panel. An estimate: without ``--measured``
every throughput in it is ASSUMED.

Per panel, method and batch size M (one compiled program each), as ``jnigt.experiments.compare.run_panel`` runs it:

  runs per call  c = all tuning runs of the (method, M) when they fit in ``--device-memory-gib`` (size full:
                 ``panels.Scale.fill``; one run = ``jnigt.training.memory.check_round_memory``'s estimate,
                 ``memory.runs_per_call``), else the fewest calls that fit; sizes without fill: the report seeds
  calls          ceil(tuning runs / c), plus ceil(report seeds / c) at the first M (padded to c runs)
  env steps      per run (T_end / round time) x trajectories per round x H, T_end and round times from
                 ``jnigt.theory.round_time`` as in ``jnigt.experiments.crosscheck.planned_env_steps``;
                 a call costs c runs (padding included); evaluations are left out
  throughput     of a call that steps B = c x (trajectories per round: M; Synchronized n ceil(M/n); AFedPG its
                 block size, ``jnigt.timing.afedpg_block_size``) trajectories at once (AFedPG's blocks' padding,
                 at most 5% on average, is left out). Assumed: ``--steps-per-second`` S at ``--at-trajectories`` B0 in parallel,
                 proportional to B up to ``--saturation`` B_sat trajectories and flat beyond
                 (S x min(B, B_sat) / min(B0, B_sat): a vmapped step costs the same until the device is full).
                 ``--measured device_check.json`` (scripts/device_check.py): per method, the env steps per second
                 of its ``panel_slice`` call on main_c at its width (Malenia NIGT: Rennala's), else of its
                 ``equal_time`` call, carried to width B along the raw Brax humanoid curve (its shape: linear below
                 the smallest measured B, flat above the largest), and to hopper panels by the raw hopper/humanoid
                 ratio; a method measured nowhere keeps the assumed model
  compile        ``--compile-s`` per program (measured: the slice's compile time of the method)

    PYTHONPATH=. python scripts/estimate_full_run.py --size full
    PYTHONPATH=. python scripts/estimate_full_run.py --size full --measured device_check.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jnigt.experiments import crosscheck, panels, protocol, tuning  # noqa: E402
from jnigt.timing import afedpg_block_size  # noqa: E402
from jnigt.training import build, memory, methods  # noqa: E402

GIB = 2**30


def trajectories_per_round(method: str, batch: int, n: int) -> int:
    return methods.get(method).trajectories_per_round(batch, n)


class Assumed:
    """Throughput S x min(B, B_sat) / min(B0, B_sat) env steps per second at B parallel trajectories."""

    def __init__(self, s: float, b0: float, b_sat: float, compile_s: float):
        self.s, self.b0, self.b_sat, self.compile_s = s, b0, b_sat, compile_s

    def rate(self, method: str, env: str, b: float) -> float:
        return self.s * min(b, self.b_sat) / min(self.b0, self.b_sat)

    def compile(self, method: str) -> float:
        return self.compile_s

    def describe(self) -> str:
        return (
            f"ASSUMED throughput: {self.s:.3g} env steps/s (gradients included) at {self.b0:g} trajectories "
            f"in parallel, proportional to the trajectories in parallel up to {self.b_sat:g} and flat beyond "
            f"(not measured); {self.compile_s:g} s compile per program (assumed)"
        )


class Measured(Assumed):
    """Rates from a scripts/device_check.py JSON, carried along its raw Brax curves."""

    def __init__(self, path: str, fallback: Assumed):
        super().__init__(fallback.s, fallback.b0, fallback.b_sat, fallback.compile_s)
        with open(path) as f:
            self.report = d = json.load(f)
        st = d["stages"]
        self.curves = {}
        for r in st.get("raw_brax", {}).get("results", {}).values():
            if "env_steps_per_s" in r:
                self.curves.setdefault(r["env"], []).append((r["batch"], r["env_steps_per_s"]))
        self.points, self.compiles = {}, {}
        for stage in ("equal_time", "panel_slice"):  # the panel slice, when there, wins
            for m, r in st.get(stage, {}).get("results", {}).items():
                if m in panels.LABELS and r.get("env_steps_per_s"):
                    width = r.get(
                        "parallel_trajectories",
                        r.get("K", 1) * (r.get("M", 1) if methods.get(m).BATCHES else 1),
                    )
                    self.points[m] = (width, r["env_steps_per_s"], stage)
                    if "compile_s" in r:
                        self.compiles[m] = r["compile_s"]
        self.main = panels.MAIN_ENV[d.get("settings", {}).get("size", "full")]
        self.path = path

    def _shape(self, env: str, b: float) -> float:
        pts = sorted(self.curves.get(env, ()))
        if not pts:
            return min(b, self.b_sat)
        if b <= pts[0][0]:
            return pts[0][1] * b / pts[0][0]
        if b >= pts[-1][0]:
            return pts[-1][1]
        for (b0, r0), (b1, r1) in zip(pts, pts[1:]):
            if b0 <= b <= b1:
                w = math.log(b / b0) / math.log(b1 / b0)
                return math.exp((1 - w) * math.log(r0) + w * math.log(r1))

    def _point(self, method: str):
        return self.points.get("rennala" if method == "malenia" else method)

    def rate(self, method: str, env: str, b: float) -> float:
        p = self._point(method)
        if p is None:
            return super().rate(method, env, b)
        width, r, _ = p
        base = self.main if self.main in self.curves else None
        rate = r * (self._shape(base, b) / self._shape(base, width) if base else 1.0)
        if base and env in self.curves and env != base:
            rate *= self._shape(env, b) / self._shape(base, b)
        return rate

    def compile(self, method: str) -> float:
        return self.compiles.get("rennala" if method == "malenia" else method, self.compile_s)

    def describe(self) -> str:
        got = ", ".join(
            f"{panels.LABELS[m]} {r:.3g} env steps/s at {w:g} trajectories ({s})"
            for m, (w, r, s) in self.points.items()
        )
        curves = ", ".join(f"{e} B={min(p)[0]}..{max(p)[0]}" for e, p in self.curves.items())
        return (
            f"MEASURED by scripts/device_check.py ({self.path}; {self.report.get('machine', {}).get('devices')}): "
            f"{got or 'no method rate'}; raw Brax curves {curves or 'none'}; methods not measured: "
            + super().describe()
        )


def panel_estimate(panel, grid, throughput, fill: bool, limit: int, runs_per_call: int | None = None) -> dict:
    """Env steps, calls and seconds per method of ``panel`` (module docstring)."""
    import jax

    timing = crosscheck.panel_timing(panel)
    n = timing.num_agents
    t_end = (
        panel.rounds
        * crosscheck.predict(panel, timing, panel.reference, grid.batches(panel.reference)[0]).total
    )
    env = protocol.make_env(panel)
    tuning_runs = len(grid.hyper_points()) * grid.tune_seeds
    out = {}
    for m in panel.methods:
        steps = seconds = calls = 0.0
        widths = []
        for k, batch in enumerate(grid.batches(m)):
            config = protocol.make_config(panel, m, batch)
            policy = build.make_policy(config, env)
            params = sum(x.size for x in jax.tree.leaves(jax.eval_shape(policy.init, jax.random.key(0))))
            if runs_per_call:
                c = runs_per_call
            elif fill:
                per_run = memory.check_round_memory(
                    config,
                    obs_size=env.observation_size,
                    action_size=env.action_size,
                    num_params=params,
                    limit=2**62,
                )
                c = memory.runs_per_call(tuning_runs, per_run, limit)
            else:
                c = grid.report_seeds
            n_calls = -(-tuning_runs // c) + (-(-grid.report_seeds // c) if k == 0 else 0)
            traj = trajectories_per_round(m, batch, n)
            per_run = t_end / crosscheck.predict(panel, timing, m, batch).total * traj * panel.horizon
            # AFedPG (one gradient per step) samples blocks of B arrivals at once in the equal-time runner
            block = 1 if methods.get(m).BATCHES else afedpg_block_size(timing, panel.horizon)
            rate = throughput.rate(m, panel.env, c * traj * block)
            steps += n_calls * c * per_run
            seconds += n_calls * c * per_run / rate + throughput.compile(m)
            calls += n_calls
            widths.append(c * traj * block)
        out[m] = dict(env_steps=steps, seconds=seconds, calls=calls, widths=widths)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="full", choices=panels.SIZES)
    p.add_argument("--panels", default="", help="comma-separated panel names (default: all of the size)")
    p.add_argument("--steps-per-second", type=float, default=2e5, help="assumed rate at --at-trajectories")
    p.add_argument("--at-trajectories", type=float, default=200, help="trajectories in parallel of that rate")
    p.add_argument(
        "--saturation", type=float, default=2048, help="trajectories in parallel that fill the device"
    )
    p.add_argument("--compile-s", type=float, default=60.0, help="assumed compile seconds per program")
    p.add_argument("--device-memory-gib", type=float, default=141.0, help="device memory (141: one H200)")
    p.add_argument("--runs-per-call", type=int, default=None, help="as jnigt reproduce --runs-per-call")
    p.add_argument("--measured", default=None, help="a scripts/device_check.py JSON: use its measured rates")
    a = p.parse_args(argv)
    from jnigt.cli_support import quiet_dependency_noise

    quiet_dependency_noise()
    args = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"# PYTHONPATH=. python scripts/estimate_full_run.py {args}".rstrip())
    print("# an ESTIMATE of the run time of jnigt reproduce --size " + a.size + ", not a measurement")
    throughput = Assumed(a.steps_per_second, a.at_trajectories, a.saturation, a.compile_s)
    if a.measured:
        throughput = Measured(a.measured, throughput)
    fill = panels.SCALES[a.size].fill
    limit = int(memory.DEFAULT_FRACTION * a.device_memory_gib * GIB)
    table = panels.panels_for(a.size)
    names = [x for x in a.panels.split(",") if x] or list(table)
    print(f"# {throughput.describe()}")
    print(
        "# runs per call: "
        + (
            f"{a.runs_per_call} (given)"
            if a.runs_per_call
            else f"all tuning runs of one (method, M) that fit in {memory.DEFAULT_FRACTION:g} x {a.device_memory_gib:g} GiB"
            if fill
            else "the report seeds"
        )
        + "; width = trajectories stepped at once per call"
    )
    total = total_steps = 0.0
    by_method = {}
    for name in names:
        panel = table[name]
        est = panel_estimate(
            panel, panel.grid or tuning.GRIDS[a.size], throughput, fill, limit, a.runs_per_call
        )
        s = sum(e["seconds"] for e in est.values())
        steps = sum(e["env_steps"] for e in est.values())
        total, total_steps = total + s, total_steps + steps
        for m, e in est.items():
            by_method[m] = by_method.get(m, 0.0) + e["seconds"]
        per = ", ".join(
            f"{panels.LABELS[m]} {e['seconds'] / 3600:.1f} h ({e['env_steps']:.2g} steps, {e['calls']:g} calls, "
            f"width {'/'.join(str(w) for w in e['widths'])})"
            for m, e in est.items()
        )
        print(f"{name:18s} {s / 3600:6.1f} h  {steps:.3g} env steps: {per}", flush=True)
    print(f"all {len(names)} panels: {total_steps:.3g} env steps (padding included), {total / 3600:.0f} h")
    print("by method: " + ", ".join(f"{panels.LABELS[m]} {v / 3600:.0f} h" for m, v in by_method.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
