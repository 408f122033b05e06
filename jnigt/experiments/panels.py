"""The paper's panels (and two beyond it), each at three sizes: ``tiny`` | ``cpu`` | ``full``.

A :class:`Panel` is one plot: one environment and timing scenario, several methods, one equal-time
grid. Every method is tuned on it (:mod:`jnigt.experiments.tuning`) and reported on fresh seeds. See
docs/algorithms.md#experiments for the scenarios:

    (a) h_i = 1,       kappa_i = 0                   step_model "equal", comm_model "zero"
    (b) h_i = sqrt(i), kappa_i = sqrt(i)             step_model "sqrt",  comm_model "sqrt"
    (c) h_i = sqrt(i), kappa_i = sqrt(i) d^(1/4)     step_model "sqrt",  comm_model "sqrt_d"

Panel table (``<main>`` = the main environment of the size: humanoid at ``full``; at ``cpu``
inverted_pendulum, because humanoid is far too slow on a CPU; at ``tiny`` brax's toy ``fast`` env):

| name | env | n | timing | methods (reference first) |
|---|---|---|---|---|
| main_a, main_b, main_c | <main> | 10 | (a), (b), (c) | Rennala NIGT, Synchronized NIGT, AFedPG |
| reacher_c, walker2d_c, hopper_c | reacher, walker2d, hopper | 10 | (c) | same |
| n100_a, n100_c | <main> | 100 | (a), (c) | same |
| decreasing | <main> | 10 | h_i = sqrt(n + 1 - i), kappa_i = 0 | same |
| hetero | mirrored_<main> | 2 | h = (1, 10), kappa = 0 | Malenia NIGT, AFedPG |
| physics | hopper (cpu/full), inverted_pendulum (tiny) with per-agent physics | 10 | (b) | Malenia NIGT, AFedPG, Synchronized NIGT |
| main_c_trajectory | <main> | 10 | (c), time unit "trajectory" | Rennala NIGT, Synchronized NIGT, AFedPG |
| humanoid_c (size cpu only) | humanoid, H = 50, 20 rounds, own small grid | 10 | (c) | same as main_c |
| playground_c (size full only) | playground:CartpoleSwingup (MuJoCo Playground, MJX) | 10 | (c) | same as main_c |

At size ``cpu`` two panels differ from the others (the same for every method of the panel, stated in their
notes and in the table's gamma and rounds columns): ``reacher_c`` runs with discount gamma = 0.9, 100 rounds and
its own grid (:data:`REACHER_CPU`), ``hetero`` 90 rounds (:data:`HETERO_CPU_ROUNDS`); without that neither
improved on its initial policy.

``physics``: agent i's masses, frictions and actuator gears are scaled by factors drawn uniformly from
[0.7, 1.3] (``jnigt_envs.random_physics`` with key ``physics_seed``), so the agents' objectives differ:
the heterogeneous setting of Malenia, beyond the paper. ``main_c_trajectory``: scenario (c) where
h_i is charged per gradient (trajectory) instead of per environment step (``TrainConfig.time_unit``);
``main_c`` is the per-step unit. At ``tiny`` the reacher/walker2d/hopper panels use ``fast`` too.

Run time (``jnigt reproduce``): ``tiny`` minutes on a CPU; ``cpu`` all 13 panels, measured in
docs/results/equal_time.md (wall times per panel in docs/results/equal_time/walls.json); ``full`` on one
GPU: estimated, not measured, in docs/results/full_run_estimate.txt
(``scripts/estimate_full_run.py``: the env steps :func:`jnigt.theory.round_time` predicts, over an ASSUMED
throughput that ``scripts/device_check.py`` measures once an accelerator is lent). At ``full`` the runs per
call default to all tuning runs of one (method, M) that fit in memory (:attr:`Scale.fill`).

Simulated end time: ``T_end = rounds * (the reference method's first-round time)`` at the panel's
default hyperparameters (for fixed times, exactly ``rounds`` reference rounds); every method of the
panel runs to ``T_end`` and is evaluated on ``grid_points`` equally spaced times in ``[0, T_end]``.
"""

from __future__ import annotations

import dataclasses

from jnigt.experiments.tuning import TuningGrid

SIZES = ("tiny", "cpu", "full")
LABELS = {
    "rennala": "Rennala NIGT",
    "malenia": "Malenia NIGT",
    "synchronized": "Synchronized NIGT",
    "afedpg": "AFedPG",
}
HOMOGENEOUS = ("rennala", "synchronized", "afedpg")
SCENARIOS = {
    "a": ("equal", "zero"),
    "b": ("sqrt", "sqrt"),
    "c": ("sqrt", "sqrt_d"),
}
MAIN_ENV = {"tiny": "fast", "cpu": "inverted_pendulum", "full": "humanoid"}


@dataclasses.dataclass(frozen=True)
class Panel:
    """One comparison plot. ``methods[0]`` is the reference of the time-to-threshold ratios."""

    name: str
    title: str
    env: str
    num_agents: int
    step_model: str
    comm_model: str
    methods: tuple[str, ...]
    horizon: int
    rounds: int  # T_end = rounds x the reference's first-round time
    grid_points: int = 25
    backend: str | None = "spring"
    eval_episodes: int = 16
    time_unit: str | None = None  # None: TrainConfig's default ("step")
    discount: float | None = None  # gamma of the GPOMDP objective; None: TrainConfig's default (0.99)
    physics_spread: float = 0.0  # > 0: per-agent physics (jnigt_envs.random_physics)
    physics_seed: int = 0
    policy: str = "mlp"  # TrainConfig.policy ("linear" for LQR ground truth)
    note: str = ""
    grid: TuningGrid | None = None  # None: the size's grid (jnigt.experiments.tuning.GRIDS)

    @property
    def reference(self) -> str:
        return self.methods[0]


@dataclasses.dataclass(frozen=True)
class Scale:
    """Per-size lengths shared by the panels."""

    horizon: dict
    rounds: int
    grid_points: int
    eval_episodes: int
    n100: int  # "n = 100" panels (fewer agents at tiny)
    n10: int
    #: runs per call: all runs of one (method, M) that fit in memory (compare.fill_runs_per_call)
    fill: bool = False


SCALES = {
    "tiny": Scale(horizon={"default": 4}, rounds=3, grid_points=4, eval_episodes=2, n100=8, n10=4),
    "cpu": Scale(
        horizon={"default": 100, "hopper": 100, "walker2d": 100, "reacher": 50},
        rounds=30,
        grid_points=13,
        eval_episodes=8,
        n100=100,
        n10=10,
    ),
    "full": Scale(
        horizon={"default": 1000}, rounds=500, grid_points=25, eval_episodes=16, n100=100, n10=10, fill=True
    ),
}


#: The humanoid panel of size cpu, sized from measurements on the shared 2-core CPU (scripts/bench_humanoid.py;
#: the figures are in docs/results/bench_humanoid.json): H = 50 and 20 rounds keep it to minutes there.
def _small_grid(*log2_alphas: int) -> TuningGrid:
    """A panel's own small cpu grid: alpha = 2^k for k in ``log2_alphas`` x eta = 0.1 x M = 20, 2 + 5 seeds."""
    return TuningGrid(
        learning_rates=tuple(2.0**k for k in log2_alphas),
        momenta=(0.1,),
        batch_sizes=(20,),
        tune_seeds=2,
        report_seeds=5,
    )


HUMANOID_CPU = dict(
    horizon=50,
    rounds=20,
    grid=_small_grid(-10, -8, -6, -4, -2),
    note="humanoid at cpu size: H=50, 20 rounds, grid alpha in {2^-10, ..., 2^-2} (5) x eta=0.1 (the paper's "
    "humanoid eta), 2 tuning seeds; about 11 min on 2 shared CPU cores",
)


#: The reacher panel of size cpu. Brax reacher's reward is -||tip - target|| - sum(action^2) < 0 at every step,
#: and at init_std 1 the control cost of the exploration noise is most of it (H = 50: about -41 of -50). Without
#: a baseline the reward-to-go is then about -50 on every trajectory, so the GPOMDP gradient is almost all noise:
#: at the initial policy the trace of its covariance is 1.5e6 at gamma = 0.99 but 3.7e4 at gamma = 0.9, with
#: ||E g||^2 too small to measure in 1024 trajectories at 0.99 (on the std head's bias, the batch needed for a
#: cosine of about 0.7 drops from 770 trajectories to 100). At gamma = 0.99 and 30 rounds no method improved
#: on the initial return (docs/results/equal_time); gamma = 0.9 (same for every method; returns are still reported
#: undiscounted) and 100 rounds, so that Rennala's normalised steps (length alpha) can travel far enough: the
#: panel alone gave initial -48.6 -> Rennala -20.8 [-29.1, -17.2], Synchronized -25.1, AFedPG -20.1.
REACHER_CPU = dict(
    discount=0.9,
    rounds=100,
    grid=_small_grid(-10, -8, -6, -4),
    note="reacher at cpu size: gamma=0.9, 100 rounds, grid alpha in {2^-10, ..., 2^-4} (4) x eta=0.1, 2 tuning "
    "seeds (at gamma=0.99 and 30 rounds nothing learns: the always-negative reward makes the gradient noise)",
)


#: Rounds of the hetero panel at size cpu. Malenia makes one update per round (a round waits for the slow agent:
#: 6000 time units against 91 per AFedPG arrival), so 30 rounds are only 30 normalised steps; its tuned alpha
#: (2^-4) rose to 38 on the tuning seeds but gave 23 (initial 21.8) on the report seeds. 90 rounds (3x the
#: simulated time; n = 2 keeps it cheap): the panel alone gave initial 21.75 -> Malenia 40.5 [35.4, 40.7]
#: (alpha 2^-6), AFedPG 39.6 [30.8, 42.8] (median final [20%, 80%] of 5 report seeds).
HETERO_CPU_ROUNDS = 90


#: The MuJoCo Playground panel, size full only (the tiny and cpu sizes keep to brax's envs). DM Control Suite's
#: cartpole swing-up (envs/playground.py): the pole starts hanging down, reward in [0, 1] per step; MJX's JAX
#: implementation (backend None). Its threshold: jnigt.experiments.stats.THRESHOLDS.
PLAYGROUND_ENV = "playground:CartpoleSwingup"
PLAYGROUND_FULL = dict(
    backend=None,
    note="MuJoCo Playground (DM Control Suite) through MJX's JAX implementation; size full only",
)


def _env_for(size: str, env: str) -> str:
    return "fast" if size == "tiny" else env


def panels_for(size: str = "cpu") -> dict[str, Panel]:
    """All panels at ``size`` (``tiny`` | ``cpu`` | ``full``), by name, in the order of the table."""
    if size not in SIZES:
        raise ValueError(f"size: unknown size {size!r}; valid sizes: {', '.join(SIZES)}")
    s = SCALES[size]
    main = MAIN_ENV[size]
    main_note = "" if size == "full" else f"main env {main} (humanoid is too slow at size {size})"
    backend = None if size == "tiny" else "spring"

    def h(env):
        return s.horizon.get(env, s.horizon["default"])

    def make(name, title, env, n, scenario, methods, **kw):
        """A panel with the size's defaults; ``kw`` sets other fields or overrides a default."""
        step, comm = SCENARIOS[scenario] if scenario in SCENARIOS else scenario
        defaults = dict(horizon=h(env), rounds=s.rounds, grid_points=s.grid_points, backend=backend)
        return Panel(
            name=name,
            title=title,
            env=env,
            num_agents=n,
            step_model=step,
            comm_model=comm,
            methods=methods,
            eval_episodes=s.eval_episodes,
            **{**defaults, **kw},
        )

    out = []
    for sc, label in (
        ("a", "h=1, kappa=0"),
        ("b", "h=sqrt(i), kappa=sqrt(i)"),
        ("c", "h=sqrt(i), kappa=sqrt(i) d^1/4"),
    ):
        out.append(
            make(
                f"main_{sc}",
                f"{main}, n={s.n10}, ({sc}) {label}",
                main,
                s.n10,
                sc,
                HOMOGENEOUS,
                note=main_note,
            )
        )
    for env in ("reacher", "walker2d", "hopper"):
        e = _env_for(size, env)
        kw = dict(note="" if e == env else f"{env} replaced by {e} at size {size}")
        title = f"{e}, n={s.n10}, (c)"
        if size == "cpu" and env == "reacher":
            kw, title = REACHER_CPU, f"{title}, gamma=0.9, 100 rounds"
        out.append(make(f"{env}_c", title, e, s.n10, "c", HOMOGENEOUS, **kw))
    for sc in ("a", "c"):
        out.append(
            make(f"n100_{sc}", f"{main}, n={s.n100}, ({sc})", main, s.n100, sc, HOMOGENEOUS, note=main_note)
        )
    out.append(
        make(
            "decreasing",
            f"{main}, n={s.n10}, h_i=sqrt(n+1-i), kappa=0",
            main,
            s.n10,
            ("decreasing", "zero"),
            HOMOGENEOUS,
            note=main_note,
        )
    )
    kw = dict(note=main_note)
    if size == "cpu":
        kw = dict(
            rounds=HETERO_CPU_ROUNDS,
            note=f"{main_note}; {HETERO_CPU_ROUNDS} rounds (Malenia: one update a round)",
        )
    out.append(
        make(
            "hetero",
            f"mirrored_{main}, n=2, h=(1,10), Malenia NIGT vs AFedPG",
            f"mirrored_{main}",
            2,
            ("1,10", "zero"),
            ("malenia", "afedpg"),
            **kw,
        )
    )
    phys_env = "inverted_pendulum" if size == "tiny" else "hopper"
    p = make(
        "physics",
        f"{phys_env}, n={s.n10} agents of different physics, (b)",
        phys_env,
        s.n10,
        "b",
        ("malenia", "afedpg", "synchronized"),
        physics_spread=0.3,
        note="per-agent masses, frictions, gears x U[0.7, 1.3] (beyond the paper)",
    )
    out.append(dataclasses.replace(p, backend="spring") if size == "tiny" else p)
    out.append(
        make(
            "main_c_trajectory",
            f"{main}, n={s.n10}, (c), time per trajectory",
            main,
            s.n10,
            "c",
            HOMOGENEOUS,
            time_unit="trajectory",
            note=(main_note + "; " if main_note else "") + "h_i charged per gradient",
        )
    )
    if size == "full":
        out.append(
            make(
                "playground_c",
                f"{PLAYGROUND_ENV}, n={s.n10}, (c)",
                PLAYGROUND_ENV,
                s.n10,
                "c",
                HOMOGENEOUS,
                **PLAYGROUND_FULL,
            )
        )
    if size == "cpu":
        out.append(
            make(
                "humanoid_c",
                "humanoid, n=10, (c), H=50, 20 rounds",
                "humanoid",
                s.n10,
                "c",
                HOMOGENEOUS,
                **HUMANOID_CPU,
            )
        )
    return {p.name: p for p in out}


def panel_table(size: str = "cpu") -> str:
    """The panel table at ``size`` as Markdown (for the README and the run log)."""
    from jnigt.training.config import TrainConfig

    rows = [
        "| panel | env | H | gamma | n | step | comm | time unit | methods | rounds | note |",
        "|" + "---|" * 11,
    ]
    for p in panels_for(size).values():
        gamma = p.discount if p.discount is not None else TrainConfig.discount
        rows.append(
            f"| {p.name} | {p.env} | {p.horizon} | {gamma:g} | {p.num_agents} | {p.step_model} | {p.comm_model} | "
            f"{p.time_unit or 'step'} | {', '.join(LABELS[m] for m in p.methods)} | {p.rounds} | {p.note} |"
        )
    return "\n".join(rows)
