"""Accelerator check: measured throughput for the full-run estimate, in one command of under 8 minutes.

Writes one JSON (``--out``) with three stages, each with its own time budget (``--budget STAGE=SECONDS``):

  raw_brax     vmapped Brax stepping with random actions (``bench_sweep._raw_rollout``), humanoid and hopper
               on the backend of the ``--size full`` panels (spring), B = 1024 .. 16384 envs x 100 steps;
               the programs of one env compile concurrently (XLA releases the GIL);
  equal_time   the equal-time runner (``jnigt.experiments.sweep.EqualTimeRunner``) on the full ``main_c``
               problem (humanoid, H = 1000, n = 10, scenario (c)), K runs x M = 128 x 32 = 4096 trajectories
               per round, Rennala NIGT and AFedPG to the same end times; the Rennala event loop
               (``jnigt.experiments.eventloop.RennalaEventLoop``) on the same problem, and the ratios;
  panel_slice  a slice of ``jnigt reproduce --size full`` panel ``main_c`` (its budget: compiles + 2 minutes): per
               method, its first tuning call (M = the grid's first, runs per call as the panel fills them,
               ``protocol.fill_runs_per_call``).

The programs of a stage compile concurrently in threads (XLA releases the GIL; the device has 16 cores), the
event loop's first round beside them.
Env steps per second are the marginal rate of a call to end time ``r`` rounds over a call to one round (the
same compiled program: the times are an argument), so compilation, evaluation and launch cost drop out; the
compile time is recorded beside it. ``scripts/estimate_full_run.py --measured <out>`` turns it into hours.

The stages run in a child process; this process only watches. Each measurement is appended to the JSON as it
finishes; a stage that reaches its budget skips what is left (``over_budget``), and one that runs past its
budget plus ``--grace`` (a compile that never ends) is killed and recorded as such; the next stage then runs in
a fresh child. At ``--deadline`` seconds everything still running is killed and the stages left say so. ``--tiny``: the same code on CPU in seconds (env ``fast``, B = 8 and 16, K x M = 4 x 4, the
tiny ``main_c``, its reference method only in the slice), what tests/test_device_check.py runs.

    python scripts/device_check.py --out device_check.json                 # on the accelerator
    python scripts/device_check.py --tiny --out /tmp/device_check.json     # anywhere

On a lent H200 (its image has jax with CUDA, flax, optax, chex, scipy, but no brax or mujoco; Python 3.12): carry
these cp312 wheels (about 30 MB), fetched here with ``pip download --no-deps --only-binary=:all: --python-version
3.12 --implementation cp --platform manylinux_2_28_x86_64 -d .whl``: brax==0.14.2 jaxopt==0.8.5 mujoco==4.0.0
mujoco-core==4.0.0 mujoco-studio==4.0.0 mujoco-mjx==3.17.0 trimesh==5.2.0 glfw==2.11.0, and run
``pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && mkdir -p /tmp/pp && ln -sfn $PWD/envs
/tmp/pp/jnigt_envs && PYTHONPATH=/tmp/site:$PWD:/tmp/pp PYTHONUNBUFFERED=1 python3 scripts/device_check.py
--out $OUT/device_check.json`` (the machine's jax may be newer than the one pinned here: the JSON records both).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STAGES = ("raw_brax", "equal_time", "panel_slice")
#: Seconds per stage (full / tiny). Full: 390 s of stages; with the child's start and --deadline, < 8 minutes.
BUDGETS = {
    "full": {"raw_brax": 75.0, "equal_time": 150.0, "panel_slice": 165.0},
    "tiny": {"raw_brax": 120.0, "equal_time": 120.0, "panel_slice": 120.0},  # wall on a loaded 2-core CPU
}
SETTINGS = {
    "full": dict(
        size="full",
        raw_envs=("humanoid", "hopper"),
        raw_backend="spring",
        raw_batches=(1024, 2048, 4096, 8192, 16384),
        raw_steps=100,
        runs=128,
        batch=32,
        max_rounds=50,
        slice_methods=3,
    ),
    "tiny": dict(
        size="tiny",
        raw_envs=("fast",),
        raw_backend=None,
        raw_batches=(8, 16),
        raw_steps=8,
        runs=4,
        batch=4,
        max_rounds=3,
        slice_methods=1,  # the reference only: the loop is the same, the compiles are what costs
    ),
}


# ---------------------------------------------------------------------------------------------- child
class Stage:
    """Events of one stage, appended to the events file; ``left()`` is the time left of its budget."""

    def __init__(self, events: str, name: str, budget: float):
        self.events, self.name, self.budget, self.t0 = events, name, budget, time.perf_counter()

    def emit(self, **event) -> None:
        with open(self.events, "a") as f:
            f.write(json.dumps(dict(stage=self.name, **event), default=float) + "\n")

    def result(self, key: str, value) -> None:
        self.emit(event="result", key=key, value=value)

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def over(self, what: str) -> bool:
        """True (and recorded) when the budget is spent: ``what`` is skipped."""
        if self.left() > 0:
            return False
        self.emit(event="over_budget", skipped=what)
        return True


def _compile_all(jobs: dict) -> dict:
    """``{name: (runner, seeds, lrs, moms)}`` -> ``{name: (call, compile_s)}``: each runner's equal-time program
    lowered here (tracing holds the GIL), then all compiled at once in threads (XLA releases it); ``call(times)``
    runs the compiled program on those runs and returns its records."""
    from concurrent.futures import ThreadPoolExecutor

    import jax
    import numpy as np

    from jnigt.experiments.sweep import time_grid

    lowered = {}
    for name, (runner, seeds, lrs, moms) in jobs.items():
        args = (
            np.asarray(seeds, np.int32),
            np.broadcast_to(np.asarray(lrs, np.float32), np.shape(seeds)),
            np.broadcast_to(np.asarray(moms, np.float32), np.shape(seeds)),
        )
        lowered[name] = (runner.lower(*args, time_grid(1.0, 2)), args, runner.compiler_options)

    def build(name):
        lo, args, options = lowered[name]
        t = time.perf_counter()
        compiled = lo.compile(compiler_options=options)
        return (lambda times: jax.device_get(compiled(*args, times))), time.perf_counter() - t

    with ThreadPoolExecutor(max(1, len(lowered))) as pool:
        return dict(zip(lowered, pool.map(build, lowered)))


def _rate(call, compile_s, t_round, stage, what, max_rounds):
    """A first 1-round call, a steady 1-round call, then a call of as many rounds as half the time left allows
    (the same compiled program: the grid is an argument): env steps per second = extra env steps / extra wall
    of the long call over the 1-round call, so evaluation and launch costs drop out."""
    import numpy as np

    from jnigt.experiments.sweep import time_grid

    def timed(rounds):
        t = time.perf_counter()
        recs = call(time_grid(rounds * t_round * (1 + 1e-6), 2))
        wall = time.perf_counter() - t
        return wall, float(np.sum(recs["env_steps"][:, -1])), int(np.median(recs["rounds"][:, -1]))

    out = dict(compile_s=round(compile_s, 2))
    if stage.over(f"{what}: calls"):
        return out
    first, _, _ = timed(1)
    out.update(first_call_s=round(first, 3))
    if stage.over(f"{what}: steady calls"):
        return out
    w1, s1, _ = timed(1)
    r = int(min(max_rounds, max(2, 0.5 * stage.left() / max(w1, 1e-3))))
    if stage.left() < 2 * w1:
        r = 1
    wr, sr, steps = (w1, s1, 1) if r == 1 else timed(r)
    rate = (sr - s1) / (wr - w1) if r > 1 and wr > w1 else s1 / w1
    out.update(
        one_round_call_s=round(w1, 3),
        rounds=r,
        steps_by_end=steps,
        call_s=round(wr, 3),
        env_steps=sr,
        env_steps_per_s=rate,
    )
    return out


def raw_brax(stage: Stage, s: dict) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import jax

    sys.path.insert(0, HERE)
    from bench_sweep import _best, _raw_rollout

    from jnigt_envs import make_env

    for name in s["raw_envs"]:
        if stage.over(f"{name}: every batch"):
            return
        env = make_env(name, backend=s["raw_backend"])
        key = jax.random.PRNGKey(0)
        t = time.perf_counter()
        lowered = {b: _raw_rollout(env, b, s["raw_steps"]).lower(key) for b in s["raw_batches"]}
        with ThreadPoolExecutor(len(lowered)) as pool:
            compiled = dict(zip(lowered, pool.map(lambda lo: lo.compile(), lowered.values())))
        stage.result(f"{name}_compile", dict(batches=list(lowered), wall_s=round(time.perf_counter() - t, 2)))
        for b, fn in compiled.items():
            if stage.over(f"{name} B={b}"):
                return
            jax.block_until_ready(fn(key))
            wall = _best(lambda: fn(jax.random.PRNGKey(1)), 3)
            stage.result(
                f"{name}_B{b}",
                dict(
                    env=name,
                    backend=s["raw_backend"],
                    batch=b,
                    steps=s["raw_steps"],
                    call_s=wall,
                    env_steps_per_s=b * s["raw_steps"] / wall,
                ),
            )


def equal_time(stage: Stage, s: dict) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from jnigt.experiments import panels, protocol
    from jnigt.experiments.eventloop import RennalaEventLoop
    from jnigt.experiments.sweep import EqualTimeRunner
    from jnigt.training import methods

    panel = panels.panels_for(s["size"])["main_c"]
    env = protocol.make_env(panel)
    k, m = s["runs"], s["batch"]
    trainers = {x: protocol.make_trainer(panel, x, m, env=env) for x in ("rennala", "afedpg")}
    c = trainers["rennala"].config
    tr = trainers["rennala"]
    loop = RennalaEventLoop(
        tr.policy, tr.env, tr.timing.step_time, tr.timing.comm_time, c.horizon, c.discount, m
    )
    jobs = {
        x: (EqualTimeRunner(t, fast_compile=s["size"] == "tiny"), np.arange(k), c.learning_rate, c.momentum)
        for x, t in trainers.items()
    }
    # beside the runners' compiles: the event loop compiles (and runs a round), and one Rennala round's time
    # (both methods run to the same times) is computed
    with ThreadPoolExecutor(2) as pool:

        def warm():
            t = time.perf_counter()
            loop.run(0, c.learning_rate, c.momentum, 1)
            return time.perf_counter() - t

        loop_first = pool.submit(warm)
        round_time = pool.submit(protocol.end_time, trainers["rennala"], 1)
        programs = _compile_all(jobs)
        loop_first_s, t_round = loop_first.result(), round_time.result()
    stage.result("compile", {x: round(w, 2) for x, (_, w) in programs.items()})
    rates = {}
    for x, (call, compile_s) in programs.items():
        share = Stage(stage.events, stage.name, stage.left() / 3)  # the event loop keeps a third
        r = _rate(call, compile_s, t_round, share, x, s["max_rounds"])
        r.update(panel=panel.name, env=panel.env, horizon=panel.horizon, n=panel.num_agents, K=k, M=m)
        r.update(parallel_trajectories=k * (m if methods.get(x).BATCHES else 1), rounds_of="rennala")
        stage.result(x, r)
        rates[x] = r.get("env_steps_per_s")
    if not stage.over("event loop"):
        t = time.perf_counter()
        _, _, steps, traj = loop.run(1, c.learning_rate, c.momentum, 1)
        wall = time.perf_counter() - t
        rates["event_loop"] = steps / wall
        stage.result(
            "event_loop",
            dict(
                first_round_s=round(loop_first_s, 2),
                round_s=round(wall, 3),
                env_steps=steps,
                trajectories=traj,
                env_steps_per_s=steps / wall,
            ),
        )
    ratios = {}
    for a, b in (("rennala", "event_loop"), ("afedpg", "event_loop"), ("afedpg", "rennala")):
        if rates.get(a) and rates.get(b):
            ratios[f"{a}_over_{b}"] = rates[a] / rates[b]
    stage.result("ratios", ratios)


def panel_slice(stage: Stage, s: dict) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from jnigt.experiments import panels, protocol, tuning
    from jnigt.experiments.sweep import EqualTimeRunner

    panel = panels.panels_for(s["size"])["main_c"]
    grid = panel.grid or tuning.GRIDS[s["size"]]
    env = protocol.make_env(panel)
    hp = grid.hyper_points()
    runs = len(hp) * grid.tune_seeds
    methods = panel.methods[: s["slice_methods"]]
    jobs, info = {}, {}
    for method in methods:  # each method's first tuning call, as run_panel makes it
        batch = grid.batches(method)[0]
        trainer = protocol.make_trainer(panel, method, batch, env=env)
        c = protocol.fill_runs_per_call(trainer, runs)
        lrs = np.repeat([a for a, _ in hp], grid.tune_seeds)[:c]
        moms = np.repeat([e for _, e in hp], grid.tune_seeds)[:c]
        seeds = np.tile(np.array(grid.tuning_seeds), len(hp))[:c]
        jobs[method] = (EqualTimeRunner(trainer, fast_compile=s["size"] == "tiny"), seeds, lrs, moms)
        slots = {
            "rennala": batch,
            "malenia": batch,
            "synchronized": panel.num_agents * -(-batch // panel.num_agents),
        }
        info[method] = dict(
            panel=panel.name,
            size=s["size"],
            env=panel.env,
            horizon=panel.horizon,
            M=batch,
            tuning_runs=runs,
            runs_per_call=c,
            parallel_trajectories=c * slots.get(method, 1),
            rounds_of=panel.reference,
        )
        if method == panel.reference:
            reference = trainer
    with ThreadPoolExecutor(1) as pool:  # one reference round's time, beside the compiles
        round_time = pool.submit(protocol.end_time, reference, 1)
        programs = _compile_all(jobs)
        t_round = round_time.result()
    stage.result("compile", {x: round(w, 2) for x, (_, w) in programs.items()})
    for i, (method, (call, compile_s)) in enumerate(programs.items()):
        # this method's share of what is left: the later methods get theirs
        share = Stage(stage.events, stage.name, stage.left() / (len(programs) - i))
        r = _rate(call, compile_s, t_round, share, method, s["max_rounds"])
        stage.result(method, dict(r, **info[method]))


def child(a) -> int:
    s = SETTINGS["tiny" if a.tiny else "full"]
    from jnigt.experiments import reproducible

    for name in a.stages.split(","):
        stage = Stage(a.events, name, a.budgets[name])
        stage.emit(event="start", budget_s=a.budgets[name])
        if not a.machine_written:  # once per child
            import jax

            stage.emit(
                event="machine",
                value=dict(
                    reproducible.machine(),
                    backend=jax.default_backend(),
                    devices=[str(d) for d in jax.devices()],
                ),
            )
            a.machine_written = True
        {"raw_brax": raw_brax, "equal_time": equal_time, "panel_slice": panel_slice}[name](stage, s)
        stage.emit(event="end", wall_s=time.perf_counter() - stage.t0)
    return 0


# --------------------------------------------------------------------------------------------- parent
def merge(report: dict, event: dict) -> None:
    """Fold one child event into the report."""
    st = report["stages"][event["stage"]]
    kind = event["event"]
    if kind == "start":
        st["status"] = "running"
    elif kind == "machine":
        report["machine"] = event["value"]
    elif kind == "result":
        st["results"][event["key"]] = event["value"]
    elif kind == "over_budget":
        st["status"] = "over_budget"
        st.setdefault("skipped", []).append(event["skipped"])
    elif kind == "end":
        st["wall_s"] = round(event["wall_s"], 2)
        if st["status"] == "running":  # a stage that ended past its budget ran over it
            st["status"] = "done" if event["wall_s"] <= st["budget_s"] else "over_budget"


def write(report: dict, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1, default=float)
    os.replace(tmp, path)


def supervise(
    cmd: list[str],
    stages,
    budgets: dict,
    events: str,
    report: dict,
    out: str,
    grace: float,
    poll: float = 0.2,
    deadline: float = float("inf"),
) -> dict:
    """Run ``cmd + [--stages a,b,...]`` until every stage is done, killing a child whose current stage runs
    past its budget + ``grace`` (recorded ``killed``) and restarting it on the stages left; past ``deadline``
    seconds the child is killed and every stage left is recorded ``not_run`` (deadline)."""
    todo = list(stages)
    seen, end = 0, time.monotonic() + deadline
    while todo:
        if time.monotonic() > end:
            for name in todo:
                report["stages"][name].update(status="not_run", reason="deadline")
            write(report, out)
            break
        with open(events + ".stderr", "w") as err:
            proc = subprocess.Popen(cmd + ["--stages", ",".join(todo)], stderr=err, start_new_session=True)
        current, started = None, time.monotonic()
        while True:
            code = proc.poll()
            # whole lines only: the child may be writing the last one
            lines = open(events).read().split("\n")[:-1] if os.path.exists(events) else []
            for line in lines[seen:]:
                ev = json.loads(line)
                merge(report, ev)
                if ev["event"] == "start":
                    current, started = ev["stage"], time.monotonic()
                elif ev["event"] == "end":
                    todo.remove(ev["stage"])
                    current = None
            if len(lines) > seen:
                seen = len(lines)
                write(report, out)
            if code is not None:
                break
            late = time.monotonic() > end
            if late or (current is not None and time.monotonic() - started > budgets[current] + grace):
                os.killpg(proc.pid, 9)
                proc.wait()
                if current is not None:
                    st = report["stages"][current]
                    st.update(status="killed", wall_s=round(time.monotonic() - started, 2))
                    st["reason"] = "deadline" if late else "budget + grace"
                    todo.remove(current)
                write(report, out)
                break
            time.sleep(poll)
        if code is not None and todo:  # the child died inside a stage (or before one started)
            failed = current or todo[0]
            tail = open(events + ".stderr").read()[-2000:]
            report["stages"][failed].update(status="failed", exit_code=code, stderr_tail=tail)
            todo.remove(failed)
            write(report, out)
    return report


def parse_budgets(items, mode: str) -> dict:
    budgets = dict(BUDGETS[mode])
    for item in items:
        name, _, value = item.partition("=")
        if name not in STAGES:
            raise SystemExit(f"--budget: unknown stage {name!r}; stages: {', '.join(STAGES)}")
        budgets[name] = float(value)
    return budgets


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="device_check.json")
    p.add_argument("--tiny", action="store_true", help="tiny sizes on CPU (the suite's check)")
    p.add_argument("--budget", action="append", default=[], metavar="STAGE=SECONDS")
    p.add_argument(
        "--grace", type=float, default=15.0, help="seconds past a stage's budget before it is killed"
    )
    p.add_argument(
        "--deadline", type=float, default=None, help="seconds for all (default: full 465, tiny 900)"
    )
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--events", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    mode = "tiny" if a.tiny else "full"
    a.budgets = parse_budgets(a.budget, mode)
    stages = [x for x in a.stages.split(",") if x]
    unknown = [x for x in stages if x not in STAGES]
    if unknown:
        raise SystemExit(f"--stages: unknown {unknown}; stages: {', '.join(STAGES)}")
    if a.child:
        a.machine_written = False
        return child(a)
    events = os.path.abspath(a.out) + ".events"
    if os.path.exists(events):
        os.remove(events)
    report = dict(
        command="python scripts/device_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        mode=mode,
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        budgets_s=a.budgets,
        grace_s=a.grace,
        settings=SETTINGS[mode],
        stages={s: dict(status="not_run", budget_s=a.budgets[s], results={}) for s in stages},
    )
    write(report, a.out)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--events", events]
    cmd += ["--tiny"] if a.tiny else []
    cmd += [f"--budget={k}={v}" for k, v in a.budgets.items()]
    t0 = time.monotonic()
    deadline = a.deadline or (900.0 if a.tiny else 465.0)
    supervise(cmd, stages, a.budgets, events, report, a.out, a.grace, deadline=deadline)
    report["wall_s"] = round(time.monotonic() - t0, 1)
    write(report, a.out)
    for name, st in report["stages"].items():
        print(f"{name}: {st['status']} ({st.get('wall_s', '?')} s of {st['budget_s']:g})")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
