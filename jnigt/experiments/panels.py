"""The paper's panels (and a few beyond it), each at three sizes: ``tiny`` | ``cpu`` | ``full``, as data.

A :class:`Panel` is one plot: one environment and timing scenario, several methods, one equal-time
grid. Every method is tuned on it (:mod:`jnigt.experiments.tuning`) and reported on fresh seeds. The
scenarios (docs/algorithms.md#experiments):

    (a) h_i = 1,       kappa_i = 0                   step_model "equal", comm_model "zero"
    (b) h_i = sqrt(i), kappa_i = sqrt(i)             step_model "sqrt",  comm_model "sqrt"
    (c) h_i = sqrt(i), kappa_i = sqrt(i) d^(1/4)     step_model "sqrt",  comm_model "sqrt_d"

:data:`PANELS` is the table of panels, :data:`SCALES` the lengths of each size, :func:`panels_for` the
panels of one size and :func:`panel_table` their Markdown table. The main environment of a size
(:data:`MAIN_ENV`) is humanoid at ``full``, inverted_pendulum at ``cpu`` (humanoid is far too slow on a
CPU) and brax's toy ``fast`` env at ``tiny``. ``physics`` scales agent i's masses, frictions and gears by
factors drawn from [0.7, 1.3] (``jnigt_envs.random_physics``): Malenia's heterogeneous setting, beyond the
paper; ``main_c_trajectory`` charges h_i per gradient (``TrainConfig.time_unit``) instead of per step.

Simulated end time: ``T_end = rounds * (the reference method's first-round time)`` at the panel's
default hyperparameters (for fixed times, exactly ``rounds`` reference rounds); every method of the
panel runs to ``T_end`` and is evaluated on ``grid_points`` equally spaced times in ``[0, T_end]``.
"""

from __future__ import annotations

import dataclasses

from jnigt.experiments.tuning import TuningGrid
from jnigt.training.config import TrainConfig
from jnigt.training.methods import METHODS

SIZES = ("tiny", "cpu", "full")
#: method -> its label (the method module's ``LABEL``)
LABELS = {name: module.LABEL for name, module in METHODS.items()}
HOMOGENEOUS = ("rennala", "synchronized", "afedpg")
SCENARIOS = {
    "a": dict(step_model="equal", comm_model="zero"),
    "b": dict(step_model="sqrt", comm_model="sqrt"),
    "c": dict(step_model="sqrt", comm_model="sqrt_d"),
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
    """Per-size lengths shared by the panels (a panel's own value overrides them)."""

    horizon: dict  # by env name, else "default"
    rounds: int
    grid_points: int
    eval_episodes: int
    backend: str | None
    #: runs per call: all runs of one (method, M) that fit in memory (protocol.fill_runs_per_call)
    fill: bool = False


SCALES = {
    "tiny": Scale(horizon={"default": 4}, rounds=3, grid_points=4, eval_episodes=2, backend=None),
    "cpu": Scale(
        horizon={"default": 100, "hopper": 100, "walker2d": 100, "reacher": 50},
        rounds=30,
        grid_points=13,
        eval_episodes=8,
        backend="spring",
    ),
    "full": Scale(
        horizon={"default": 1000}, rounds=500, grid_points=25, eval_episodes=16, backend="spring", fill=True
    ),
}


def _small_grid(*log2_alphas: int) -> TuningGrid:
    """A panel's own small cpu grid: alpha = 2^k for k in ``log2_alphas`` x eta = 0.1 x M = 20, 2 + 5 seeds."""
    return TuningGrid(
        learning_rates=tuple(2.0**k for k in log2_alphas),
        momenta=(0.1,),
        batch_sizes=(20,),
        tune_seeds=2,
        report_seeds=5,
    )


#: Values that differ by size (in :data:`PANELS` a dict holds one value per size).
N10 = {"tiny": 4, "cpu": 10, "full": 10}
N100 = {"tiny": 8, "cpu": 100, "full": 100}
SLOW = {"full": ""} | {
    s: f"main env {MAIN_ENV[s]} (humanoid is too slow at size {s})" for s in ("tiny", "cpu")
}
PLAYGROUND_ENV = "playground:CartpoleSwingup"


def _fast_at_tiny(env: str) -> dict:
    """``env`` and its note: brax's toy ``fast`` env at size tiny."""
    return dict(
        env={"tiny": "fast", "cpu": env, "full": env},
        note={"tiny": f"{env} replaced by fast at size tiny", "cpu": "", "full": ""},
    )


def _and(note: dict, text: str) -> dict:
    return {s: f"{v}; {text}" if v else text for s, v in note.items()}


#: The panels, in table order. A row holds :class:`Panel` fields: a dict value gives one value per size,
#: the title is formatted with the panel's fields, and the fields left out take the size's :class:`Scale`;
#: ``sizes``: the sizes that have the panel (default all); ``at``: fields of one size only (why the cpu
#: panels reacher_c, hetero and humanoid_c differ: docs/algorithms.md#experiments).
PANELS = (
    dict(name="main_a", title="{env}, n={num_agents}, (a) h=1, kappa=0",
         env=MAIN_ENV, num_agents=N10, **SCENARIOS["a"], methods=HOMOGENEOUS, note=SLOW),
    dict(name="main_b", title="{env}, n={num_agents}, (b) h=sqrt(i), kappa=sqrt(i)",
         env=MAIN_ENV, num_agents=N10, **SCENARIOS["b"], methods=HOMOGENEOUS, note=SLOW),
    dict(name="main_c", title="{env}, n={num_agents}, (c) h=sqrt(i), kappa=sqrt(i) d^1/4",
         env=MAIN_ENV, num_agents=N10, **SCENARIOS["c"], methods=HOMOGENEOUS, note=SLOW),
    dict(name="reacher_c", title="{env}, n={num_agents}, (c)",
         **_fast_at_tiny("reacher"), num_agents=N10, **SCENARIOS["c"], methods=HOMOGENEOUS,
         at={"cpu": dict(
             title="{env}, n={num_agents}, (c), gamma={discount:g}, {rounds} rounds",
             discount=0.9, rounds=100, grid=_small_grid(-10, -8, -6, -4),
             note="reacher at cpu size: gamma=0.9, 100 rounds, grid alpha in {2^-10, ..., 2^-4} (4) x eta=0.1, "
             "2 tuning seeds (at gamma=0.99 and 30 rounds nothing learns: the always-negative reward makes "
             "the gradient noise)")}),
    dict(name="walker2d_c", title="{env}, n={num_agents}, (c)",
         **_fast_at_tiny("walker2d"), num_agents=N10, **SCENARIOS["c"], methods=HOMOGENEOUS),
    dict(name="hopper_c", title="{env}, n={num_agents}, (c)",
         **_fast_at_tiny("hopper"), num_agents=N10, **SCENARIOS["c"], methods=HOMOGENEOUS),
    dict(name="n100_a", title="{env}, n={num_agents}, (a)",
         env=MAIN_ENV, num_agents=N100, **SCENARIOS["a"], methods=HOMOGENEOUS, note=SLOW),
    dict(name="n100_c", title="{env}, n={num_agents}, (c)",
         env=MAIN_ENV, num_agents=N100, **SCENARIOS["c"], methods=HOMOGENEOUS, note=SLOW),
    dict(name="decreasing", title="{env}, n={num_agents}, h_i=sqrt(n+1-i), kappa=0",
         env=MAIN_ENV, num_agents=N10, step_model="decreasing", comm_model="zero", methods=HOMOGENEOUS,
         note=SLOW),
    dict(name="hetero", title="{env}, n=2, h=(1,10), Malenia NIGT vs AFedPG",
         env={s: f"mirrored_{e}" for s, e in MAIN_ENV.items()}, num_agents=2, step_model="1,10",
         comm_model="zero", methods=("malenia", "afedpg"), note=SLOW,
         at={"cpu": dict(rounds=90, note=_and(SLOW, "90 rounds (Malenia: one update a round)")["cpu"])}),
    dict(name="physics", title="{env}, n={num_agents} agents of different physics, (b)",
         env={"tiny": "inverted_pendulum", "cpu": "hopper", "full": "hopper"}, num_agents=N10,
         **SCENARIOS["b"], methods=("malenia", "afedpg", "synchronized"), backend="spring",
         physics_spread=0.3, note="per-agent masses, frictions, gears x U[0.7, 1.3] (beyond the paper)"),
    dict(name="main_c_trajectory", title="{env}, n={num_agents}, (c), time per trajectory",
         env=MAIN_ENV, num_agents=N10, **SCENARIOS["c"], methods=HOMOGENEOUS, time_unit="trajectory",
         note=_and(SLOW, "h_i charged per gradient")),
    dict(name="playground_c", title="{env}, n={num_agents}, (c)", sizes=("full",),
         env=PLAYGROUND_ENV, num_agents=N10, **SCENARIOS["c"], methods=HOMOGENEOUS, backend=None,
         note="MuJoCo Playground (DM Control Suite) through MJX's JAX implementation; size full only"),
    dict(name="humanoid_c", title="{env}, n={num_agents}, (c), H={horizon}, {rounds} rounds", sizes=("cpu",),
         env="humanoid", num_agents=N10, **SCENARIOS["c"], methods=HOMOGENEOUS, horizon=50, rounds=20,
         grid=_small_grid(-10, -8, -6, -4, -2),
         note="humanoid at cpu size: H=50, 20 rounds, grid alpha in {2^-10, ..., 2^-2} (5) x eta=0.1 (the "
         "paper's humanoid eta), 2 tuning seeds; about 11 min on 2 shared CPU cores"),
)  # fmt: skip


def _panel(row: dict, size: str) -> Panel:
    """The panel of one row of :data:`PANELS` at ``size``."""
    s = SCALES[size]
    fields = {k: v[size] if isinstance(v, dict) else v for k, v in row.items() if k not in ("sizes", "at")}
    fields.update(row.get("at", {}).get(size, {}))
    defaults = dict(
        horizon=s.horizon.get(fields["env"], s.horizon["default"]),
        rounds=s.rounds,
        grid_points=s.grid_points,
        eval_episodes=s.eval_episodes,
        backend=s.backend,
    )
    fields = {**defaults, **fields}
    return Panel(**{**fields, "title": fields["title"].format(**fields)})


def panels_for(size: str = "cpu") -> dict[str, Panel]:
    """All panels at ``size`` (``tiny`` | ``cpu`` | ``full``), by name, in the order of the table."""
    if size not in SIZES:
        raise ValueError(f"size: unknown size {size!r}; valid sizes: {', '.join(SIZES)}")
    return {r["name"]: _panel(r, size) for r in PANELS if size in r.get("sizes", SIZES)}


def panel_table(size: str = "cpu") -> str:
    """The panel table at ``size`` as Markdown (for the README and the run log)."""
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
