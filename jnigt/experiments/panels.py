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

``physics``: agent i's masses, frictions and actuator gears are scaled by factors drawn uniformly from
[0.7, 1.3] (``jnigt_envs.random_physics`` with key ``physics_seed``), so the agents' objectives differ:
the heterogeneous setting of Malenia, beyond the paper. ``main_c_trajectory``: scenario (c) where
h_i is charged per gradient (trajectory) instead of per environment step (``TrainConfig.time_unit``);
``main_c`` is the per-step unit. At ``tiny`` the reacher/walker2d/hopper panels use ``fast`` too.

Simulated end time: ``T_end = rounds * (the reference method's first-round time)`` at the panel's
default hyperparameters (for fixed times, exactly ``rounds`` reference rounds); every method of the
panel runs to ``T_end`` and is evaluated on ``grid_points`` equally spaced times in ``[0, T_end]``.
"""

from __future__ import annotations

import dataclasses

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
    physics_spread: float = 0.0  # > 0: per-agent physics (jnigt_envs.random_physics)
    physics_seed: int = 0
    policy: str = "mlp"  # TrainConfig.policy ("linear" for LQR ground truth)
    note: str = ""

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
    "full": Scale(horizon={"default": 1000}, rounds=500, grid_points=25, eval_episodes=16, n100=100, n10=10),
}


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
        step, comm = SCENARIOS[scenario] if scenario in SCENARIOS else scenario
        return Panel(
            name=name,
            title=title,
            env=env,
            num_agents=n,
            step_model=step,
            comm_model=comm,
            methods=methods,
            horizon=h(env),
            rounds=s.rounds,
            grid_points=s.grid_points,
            backend=backend,
            eval_episodes=s.eval_episodes,
            **kw,
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
        out.append(
            make(
                f"{env}_c",
                f"{e}, n={s.n10}, (c)",
                e,
                s.n10,
                "c",
                HOMOGENEOUS,
                note="" if e == env else f"{env} replaced by {e} at size {size}",
            )
        )
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
    out.append(
        make(
            "hetero",
            f"mirrored_{main}, n=2, h=(1,10), Malenia NIGT vs AFedPG",
            f"mirrored_{main}",
            2,
            ("1,10", "zero"),
            ("malenia", "afedpg"),
            note=main_note,
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
    return {p.name: p for p in out}


def panel_table(size: str = "cpu") -> str:
    """The panel table at ``size`` as Markdown (for the README and the run log)."""
    rows = ["| panel | env | H | n | step | comm | time unit | methods | rounds | note |", "|" + "---|" * 10]
    for p in panels_for(size).values():
        rows.append(
            f"| {p.name} | {p.env} | {p.horizon} | {p.num_agents} | {p.step_model} | {p.comm_model} | "
            f"{p.time_unit or 'step'} | {', '.join(LABELS[m] for m in p.methods)} | {p.rounds} | {p.note} |"
        )
    return "\n".join(rows)
