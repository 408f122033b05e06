"""The theory against exact gradients: stationarity of the linear policy on LQR, measured exactly.

On ``jnigt_envs.LQR`` (and ``HeterogeneousLQR``) the objective J_H of the linear-Gaussian policy and its
gradient are known in closed form (envs/lqr.py). With the exploration std fixed (``TrainConfig.fixed_std``:
with a learned std dJ/dstd < 0 at every std, so no finite stationary point exists) the parameters are
theta = (W, b) and the paper's quantity, ||grad J_H(theta_t)||, can be recorded on the equal-time grid
(docs/algorithms.md#theory, #simulated-time). This module holds:

* :func:`exact_records` -- the ``extra_records`` hook of ``jnigt.experiments.sweep.EqualTimeRunner``:
  ||grad J_H(theta_t)|| (``exact_grad_norm``) and J*_H - J_H(theta_t) (``exact_gap``) at every grid point,
  float32, inside the same jitted program as the evaluation.
* :func:`stationary_point` -- J*_H, the best stationary linear policy for that H (damped Newton in float64
  on ``exact_objective`` from several starts), with the Riccati gain's gap reported separately; with
  ``weights`` the stationary point of a weighted objective, e.g. :func:`arrival_rate_weights` (where
  AFedPG's updates settle on heterogeneous agents), and :func:`gradient_norm` of the uniform objective
  there (the floor predicted for AFedPG's ||grad J||).
* :func:`time_to_eps`, :func:`quantiles` -- the simulated time at which ||grad J|| first stays below eps.
* :func:`fit_rate` -- the slope of log time against log(1/eps), with a bootstrap interval over seeds;
  :data:`THEORY_EXPONENTS` and :func:`predicted_rate` -- the theory's exponents beside it.
* :func:`gradient_variance`, :func:`smoothness` -- sigma^2, L_g, L_h and D measured on the instance, and
  :func:`predicted_ratios` -- the time ratios ``jnigt.theory`` predicts from them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jnigt import theory, validate
from jnigt import timing as timing_lib
from jnigt.gradients import gpomdp
from jnigt.training import methods

__all__ = [
    "EXACT_RECORDS",
    "THEORY_NAMES",
    "THEORY_EXPONENTS",
    "StationaryPoint",
    "Rate",
    "Problem",
    "problem",
    "exact_records",
    "stationary_point",
    "gradient_norm",
    "arrival_rate_weights",
    "time_to_eps",
    "quantiles",
    "fit_rate",
    "predicted_rate",
    "predicted_ratios",
    "gradient_variance",
    "smoothness",
]

#: Names of the records :func:`exact_records` adds to ``GridRuns.extra``.
EXACT_RECORDS = ("exact_grad_norm", "exact_gap")

#: Training method -> its name in ``jnigt.theory`` (each method module's ``THEORY_NAME``).
THEORY_NAMES = {name: module.THEORY_NAME for name, module in methods.METHODS.items()}

#: Exponent of 1/eps of each term of Table 1 / Theorems 4.4 and 5.1 (docs/algorithms.md#theory), as
#: (computation terms, communication term). All are upper bounds except where ``theory.TABLE1_LOWER_BOUNDS``
#: says otherwise (Synchronous NIGT's computation, AFedPG's communication: lower bounds). As eps -> 0 the
#: largest exponent wins: 3.5 for every NIGT method when sigma > 0.
THEORY_EXPONENTS = {
    "rennala_nigt": ((2.0, 3.5), 2.0),
    "malenia_nigt": ((2.0, 3.5), 2.0),
    "synchronous_nigt": ((3.5,), 3.5),
    "afedpg": ((7.0 / 3.0, 3.5), 3.0),
}


# ------------------------------------------------------------------------------------------ the problem


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """The exact objective of one training configuration, as a function of the flat parameters.

    ``objective(theta, dtype)``: J(theta) (jnp) with theta the policy's parameters flattened (W, b);
    ``unflatten(theta)``: the policy's parameter tree; ``theta0(seed)``: the flat initial parameters of a
    run of ``seed``; ``env``, ``policy``, ``horizon``, ``discount``, ``num_agents``, ``weights`` as given.
    """

    env: object
    policy: object
    horizon: int
    discount: float
    num_agents: int
    weights: np.ndarray | None
    treedef: object
    shapes: tuple

    def unflatten(self, theta):
        leaves, start = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape, dtype=int))
            leaves.append(jnp.reshape(theta[start : start + size], shape))
            start += size
        return jax.tree.unflatten(self.treedef, leaves)

    def wbs(self, theta):
        """(W, b, std) of the flat parameters."""
        from jnigt_envs import linear_policy_to_wbs

        return linear_policy_to_wbs(self.policy, self.unflatten(theta))

    def objective(self, theta, dtype=jnp.float32):
        """J(theta) in ``dtype`` (float64 only under ``jax.enable_x64``)."""
        W, b, std = self.wbs(theta)
        W, b, std = (jnp.asarray(x, dtype) for x in (W, b, std))
        return _env_objective(self, W, b, std, dtype)

    def agent_objective(self, theta, agent_id, dtype=jnp.float32):
        """J_i(theta) of agent ``agent_id`` (traced allowed): the system that agent runs."""
        W, b, std = (jnp.asarray(x, dtype) for x in self.wbs(theta))
        from jnigt_envs import HeterogeneousLQR

        if isinstance(self.env, HeterogeneousLQR):
            js = self.env.system_objectives(W, b, std, self.horizon, self.discount, dtype)
            return js[jnp.mod(agent_id, self.env.num_systems)]
        return self.env.exact_objective(W, b, std, self.horizon, self.discount, dtype=dtype)

    def flatten(self, params) -> jax.Array:
        """The policy's parameter tree as one vector (leaves in ``jax.tree.leaves`` order)."""
        return jnp.concatenate([jnp.reshape(x, -1) for x in jax.tree.leaves(params)])

    def flat_wb(self, W, b) -> np.ndarray:
        """The flat parameters (float64) of mu = W s + b."""
        W, b = np.asarray(W, np.float64), np.asarray(b, np.float64)
        leaves, treedef = jax.tree.flatten({"params": {"mean": {"kernel": W.T, "bias": b}}})
        if treedef != self.treedef or tuple(x.shape for x in leaves) != self.shapes:
            raise ValueError(
                f"W, b: shapes {W.shape}, {b.shape} do not fit the policy's parameters {self.shapes}"
            )
        return np.concatenate([x.reshape(-1) for x in leaves])


def _env_objective(p: Problem, W, b, std, dtype):
    from jnigt_envs import HeterogeneousLQR

    if isinstance(p.env, HeterogeneousLQR):
        return p.env.exact_objective(
            W, b, std, p.horizon, p.discount, num_agents=p.num_agents, weights=p.weights, dtype=dtype
        )
    return p.env.exact_objective(W, b, std, p.horizon, p.discount, dtype=dtype)


def problem(trainer, weights=None) -> Problem:
    """The exact problem of ``trainer`` (a ``jnigt.training.Trainer`` on ``lqr`` or a ``HeterogeneousLQR``
    with ``policy="linear"``, ``fixed_std`` set and ``obs_norm="off"``); ``weights``: per-agent weights of
    the objective (None: J = (1/n) sum_i J_i)."""
    from jnigt_envs import LQR, HeterogeneousLQR

    c = trainer.config
    env = trainer.env
    if not isinstance(env, (LQR, HeterogeneousLQR)):
        raise ValueError(f"env: the exact objective needs lqr or a HeterogeneousLQR (got {c.env!r})")
    if c.policy != "linear":
        raise ValueError(f"policy: the exact objective needs policy='linear' (got {c.policy!r})")
    if c.fixed_std is None:
        raise ValueError(
            "fixed_std: the exact study needs a fixed exploration std (a number); with a learned std "
            "dJ/dstd < 0 everywhere and no stationary point exists (got None)"
        )
    if c.obs_norm != "off":
        raise ValueError(
            f"obs_norm: the exact objective is of the raw-state policy; use 'off' (got {c.obs_norm!r})"
        )
    if weights is not None:
        w = np.asarray(weights, np.float64).reshape(-1)
        if w.shape != (c.num_agents,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
            raise ValueError(
                f"weights: must be {c.num_agents} finite numbers >= 0, not all 0 (got {weights!r})"
            )
        if isinstance(env, LQR):
            w = None  # every agent runs the same system: any weighting gives the same objective
        weights = w
    shapes = jax.eval_shape(trainer.policy.init, jax.random.key(0))
    leaves, treedef = jax.tree.flatten(shapes)
    return Problem(
        env=env,
        policy=trainer.policy,
        horizon=int(c.horizon),
        discount=float(c.discount),
        num_agents=int(c.num_agents),
        weights=weights,
        treedef=treedef,
        shapes=tuple(tuple(x.shape) for x in leaves),
    )


def exact_records(trainer, j_star: float):
    """The ``extra_records`` hook of ``EqualTimeRunner``: theta_t -> ``exact_grad_norm`` =
    ||grad J_H(theta_t)|| (over the policy's parameters: W and b) and ``exact_gap`` = j_star - J_H(theta_t).

    Computed in float32 inside the program; :attr:`StationaryPoint.float32_floor` is the norm this
    computation reads at the float64 optimum (the smallest value the record can resolve)."""
    p = problem(trainer)
    j_star = float(j_star)
    if not math.isfinite(j_star):
        raise ValueError(f"j_star: must be a finite number (got {j_star!r})")

    def records(params):
        j, g = jax.value_and_grad(lambda th: p.objective(th))(p.flatten(params))
        return {"exact_grad_norm": jnp.linalg.norm(g), "exact_gap": j_star - j}

    return records


# ------------------------------------------------------------------------------ the stationary point


@dataclasses.dataclass(frozen=True)
class StationaryPoint:
    """The best stationary point found (float64).

    theta: flat parameters (the policy's leaves in ``jax.tree.leaves`` order: b, then W^T); value: J there; grad_norm: ||grad J||
    there (float64); hessian_eigs: eigenvalues of the Hessian there (all < 0: a local maximum);
    float32_floor: ||grad J|| at theta computed in float32 (what ``exact_records`` reads at the optimum);
    riccati_value: J at the infinite-horizon Riccati gain (W = -K, b = 0; single-system LQR only, else
    nan); riccati_gap = value - riccati_value (>= 0 up to the tolerance: the finite-H optimum beats it).
    starts: the values reached from each start (to show whether they agree).
    """

    theta: np.ndarray
    value: float
    grad_norm: float
    hessian_eigs: np.ndarray
    float32_floor: float
    riccati_value: float
    riccati_gap: float
    starts: tuple


def _newton_maximize(fgh, x0, tol: float, max_iter: int):
    """Damped Newton ascent in float64 (``fgh``: value, gradient and Hessian): step
    (lam I - Hess) d = grad with lam >= 0 shifting the Hessian to negative definite, backtracking until the
    value increases (or, where it is flat at float64 resolution, the gradient shrinks).
    Returns (x, grad_norm, iterations)."""
    x = jnp.asarray(x0, jnp.float64)
    val, g, Hm = fgh(x)
    for it in range(max_iter):
        gn = float(jnp.linalg.norm(g))
        if gn <= tol:
            return x, gn, it
        Hm = np.asarray(Hm)
        top = float(np.max(np.linalg.eigvalsh(Hm)))
        lam = max(0.0, top + 1e-8 * max(1.0, abs(top)))
        step = np.linalg.solve(lam * np.eye(Hm.shape[0]) - Hm, np.asarray(g))
        t = 1.0
        for _ in range(60):
            cand = x + t * step
            cval, cg, ch = fgh(cand)
            flat = abs(float(cval) - float(val)) <= 1e-13 * max(1.0, abs(float(val)))  # at float64 resolution
            better = float(cval) > float(val) or (flat and float(jnp.linalg.norm(cg)) < gn)
            if np.isfinite(float(cval)) and better:
                break
            t *= 0.5
        else:
            return x, gn, it  # no ascent possible within float64
        x, val, g, Hm = cand, cval, cg, ch
    return x, float(jnp.linalg.norm(g)), max_iter


def stationary_point(
    trainer, weights=None, starts: Sequence | None = None, tol: float = 1e-10, max_iter: int = 200
) -> StationaryPoint:
    """J*_H: the best stationary point of the exact objective of ``trainer`` (see :func:`problem`), found
    by damped Newton ascent in float64 from each start; the best local maximum (Hessian negative definite)
    wins.

    starts: flat parameter vectors (default: theta = 0, and W = -K_i, b = 0 for the Riccati gain K_i of
    every system). ``weights``: per-agent weights of the objective (:func:`arrival_rate_weights`).
    """
    from jnigt_envs import LQR

    p = problem(trainer, weights)
    env = p.env
    systems = (env,) if isinstance(env, LQR) else env.systems
    riccati_starts = [
        p.flat_wb(-K, np.zeros(K.shape[0])) for K in (s.riccati_gain(p.discount) for s in systems)
    ]
    size = riccati_starts[0].size
    if starts is None:
        starts = [np.zeros(size)] + riccati_starts
    starts = [np.asarray(s, np.float64).reshape(-1) for s in starts]
    for s in starts:
        if s.shape != (size,):
            raise ValueError(f"starts: every start must have {size} numbers (got {s.shape})")
    with jax.enable_x64(True):
        f = lambda th: p.objective(th, jnp.float64)
        fgh = jax.jit(lambda th: (f(th), jax.grad(f)(th), jax.hessian(f)(th)))
        found = []
        for s in starts:
            x, gn, _ = _newton_maximize(fgh, s, tol, max_iter)
            value, _, hess = fgh(x)
            found.append((float(value), np.asarray(x), gn, np.linalg.eigvalsh(np.asarray(hess))))
        ok = [r for r in found if r[2] <= 1e3 * tol and np.all(r[3] < 0)]
        if not ok:
            norms = ", ".join(f"{r[2]:.2e}" for r in found)
            raise ValueError(f"no start reached a local maximum (final gradient norms: {norms})")
        value, theta, gn, eig = max(ok, key=lambda r: r[0])
        riccati = float(fgh(riccati_starts[0])[0]) if isinstance(env, LQR) else float("nan")
    floor = float(jnp.linalg.norm(jax.grad(p.objective)(jnp.asarray(theta, jnp.float32))))
    return StationaryPoint(
        theta=theta,
        value=value,
        grad_norm=gn,
        hessian_eigs=eig,
        float32_floor=floor,
        riccati_value=riccati,
        riccati_gap=value - riccati,
        starts=tuple(r[0] for r in found),
    )


def gradient_norm(trainer, theta, weights=None) -> float:
    """||grad J(theta)|| in float64 for flat parameters ``theta`` (J with ``weights``, default the uniform
    (1/n) sum_i J_i): e.g. the uniform objective's gradient at the arrival-rate-weighted stationary point,
    the floor AFedPG's ||grad J|| is predicted to settle at on heterogeneous agents."""
    p = problem(trainer, weights)
    with jax.enable_x64(True):
        g = jax.grad(lambda th: p.objective(th, jnp.float64))(jnp.asarray(theta, jnp.float64))
        return float(jnp.linalg.norm(g))


def arrival_rate_weights(timing: timing_lib.Timing, horizon: int) -> np.ndarray:
    """w_i proportional to 1 / (c_i + kappa_i), normalised: the share of agent i's gradients in AFedPG's
    stream of updates (c_i the cost of one trajectory, ``jnigt.timing.trajectory_cost``; kappa_i its
    upload), so the stationary point AFedPG's updates settle at on heterogeneous agents (fixed times)."""
    c = np.asarray(timing_lib.trajectory_cost(timing, horizon), np.float64)
    k = np.asarray(timing.comm_time, np.float64)
    rate = 1.0 / (c + k)
    if not np.all(np.isfinite(rate)) or not rate.sum() > 0:
        raise ValueError(
            f"timing: every agent needs a finite positive trajectory time (got c + kappa = {c + k})"
        )
    return rate / rate.sum()


# ---------------------------------------------------------------------------------------- time to eps


def time_to_eps(times, values, eps) -> np.ndarray:
    """The first grid time from which ``values`` STAYS below eps: t_j with values[k, j'] < eps for every
    j' >= j up to the last grid point (T_end). inf where the last point is not below eps (never reached, or
    left again); NaN values count as not below.

    times: [G] non-decreasing; values: [K, G] (e.g. ``GridRuns.extra["exact_grad_norm"]``); eps: [E] > 0.
    Returns [K, E] float64.
    """
    t = np.asarray(times, np.float64).reshape(-1)
    v = np.asarray(values, np.float64)
    e = np.asarray(eps, np.float64).reshape(-1)
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2 or v.shape[1] != t.size or t.size == 0:
        raise ValueError(f"values: must be [K, G] with G = {t.size} grid times (got shape {v.shape})")
    if np.any(np.diff(t) < 0):
        raise ValueError("times: must be non-decreasing")
    if e.size == 0 or not np.all(e > 0):
        raise ValueError(f"eps: must be numbers > 0 (got {eps!r})")
    below = v[:, :, None] < e[None, None, :]  # [K, G, E]; NaN < eps is False
    # stays[k, j, e]: below at j and at every later point
    stays = np.flip(np.logical_and.accumulate(np.flip(below, 1), axis=1), 1)
    first = np.argmax(stays, axis=1)  # [K, E], 0 where never
    reached = stays[:, -1, :]
    return np.where(reached, t[first], np.inf)


def quantiles(x, q=(0.05, 0.5, 0.95)) -> np.ndarray:
    """Quantiles over axis 0 (seeds) with linear interpolation, inf allowed: a quantile that interpolates
    towards an inf value is inf (a run that never got there). Returns [len(q), ...]."""
    x = np.sort(np.asarray(x, np.float64), axis=0)
    if x.shape[0] == 0 or np.any(np.isnan(x)):
        raise ValueError("x: need at least one value per column and no NaN")
    n = x.shape[0]
    out = []
    for qq in np.atleast_1d(q):
        if not 0 <= qq <= 1:
            raise ValueError(f"q: must be in [0, 1] (got {qq!r})")
        pos = qq * (n - 1)
        lo, hi = int(math.floor(pos)), int(math.ceil(pos))
        frac = pos - lo
        a, b = x[lo], x[hi]
        with np.errstate(invalid="ignore"):
            val = np.where(frac == 0, a, np.where(np.isinf(b), np.inf, a + frac * (b - a)))
        out.append(val)
    return np.stack(out)


# ---------------------------------------------------------------------------------------------- rates


@dataclasses.dataclass(frozen=True)
class Rate:
    """T(eps) ~ C eps^-slope fitted on the eps where the median time is finite.

    slope, intercept: least squares of log T_median on log(1/eps); lo, hi: percentile bootstrap interval
    over seeds (resampled with replacement; replicates with an infinite median at a fitted eps are
    dropped, ``dropped`` counts them); eps: the eps values fitted.
    """

    slope: float
    intercept: float
    lo: float
    hi: float
    eps: np.ndarray
    dropped: int


def _ls_slope(x, y):
    A = np.stack([x, np.ones_like(x)], 1)
    (s, c), *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(s), float(c)


def fit_rate(eps, times, level: float = 0.9, bootstrap: int = 2000, seed: int = 0) -> Rate:
    """Slope of log T against log(1/eps): ``times`` [K, E] (seconds, inf = not reached; from
    :func:`time_to_eps`), eps [E]. Needs at least 2 eps with a finite median time."""
    e = np.asarray(eps, np.float64).reshape(-1)
    t = np.asarray(times, np.float64)
    if t.ndim != 2 or t.shape[1] != e.size:
        raise ValueError(f"times: must be [K, E] with E = {e.size} (got shape {t.shape})")
    if not 0 < level < 1:
        raise ValueError(f"level: must be in (0, 1) (got {level!r})")
    med = quantiles(t, (0.5,))[0]
    use = np.isfinite(med) & (med > 0)
    if use.sum() < 2:
        raise ValueError(
            f"times: need a finite positive median time at >= 2 eps values (have {int(use.sum())})"
        )
    x = np.log(1.0 / e[use])
    slope, icpt = _ls_slope(x, np.log(med[use]))
    rng = np.random.default_rng(seed)
    k = t.shape[0]
    slopes = []
    dropped = 0
    for _ in range(int(bootstrap)):
        m = quantiles(t[rng.integers(0, k, k)][:, use], (0.5,))[0]
        if not np.all(np.isfinite(m) & (m > 0)):
            dropped += 1
            continue
        slopes.append(_ls_slope(x, np.log(m))[0])
    if slopes:
        lo, hi = np.quantile(slopes, [(1 - level) / 2, (1 + level) / 2])
    else:
        lo = hi = float("nan")
    return Rate(slope, icpt, float(lo), float(hi), e[use], dropped)


def predicted_rate(
    method: str, h, kappa: float, eps, constants: theory.Constants, formulas: str = "theorem"
) -> float:
    """The slope of log T_theory against log(1/eps) over ``eps`` (least squares, as :func:`fit_rate`),
    T_theory from ``jnigt.theory.predicted_totals`` (see :func:`predicted_ratios` for the units): the
    exponent the theory predicts over the same eps range, between the smallest and the largest of
    :data:`THEORY_EXPONENTS` of that method."""
    name = THEORY_NAMES.get(method, method)
    e = np.asarray(eps, np.float64).reshape(-1)
    if e.size < 2:
        raise ValueError("eps: need at least 2 values")
    ts = np.array([theory.predicted_totals(h, kappa, ee, constants, formulas)[name] for ee in e])
    return _ls_slope(np.log(1.0 / e), np.log(ts))[0]


def predicted_ratios(h, kappa: float, eps, constants: theory.Constants, formulas: str = "theorem") -> dict:
    """T_Rennala / T_AFedPG and T_Rennala / T_Synchronized that ``jnigt.theory.predicted_totals``
    predicts at each eps: {"rennala/afedpg": [E], "rennala/synchronized": [E]}.

    Units (choice): pass as ``h`` the per-trajectory costs c_i (``jnigt.theory.trajectory_costs``: H h_i
    when h_i is per step) and ``constants.gamma = 0``, so that the theorems' computation factor
    1/(1 - gamma) is 1 and times are in the simulator's seconds; kappa = max_i kappa_i (one AllReduce).
    """
    out = {"rennala/afedpg": [], "rennala/synchronized": []}
    for ee in np.asarray(eps, np.float64).reshape(-1):
        t = theory.predicted_totals(h, kappa, float(ee), constants, formulas)
        out["rennala/afedpg"].append(t["rennala_nigt"] / t["afedpg"])
        out["rennala/synchronized"].append(t["rennala_nigt"] / t["synchronous_nigt"])
    return {k: np.asarray(v) for k, v in out.items()}


# ------------------------------------------------------------------------------ constants of the instance


def gradient_variance(trainer, params, num_trajectories: int = 1024, seed: int = 0) -> tuple[float, float]:
    """sigma^2 = E ||g(tau) - grad J_i(theta)||^2 of the single-trajectory GPOMDP estimator at ``params``
    (trajectory e run by agent e mod n, centred on that agent's exact gradient). Returns (sigma^2, its
    standard error), float64, over ``num_trajectories`` trajectories of key ``seed``."""
    p = problem(trainer)
    c = trainer.config
    num_trajectories = validate.integer("num_trajectories", num_trajectories, 2)
    keys = jax.random.split(jax.random.key(seed), num_trajectories)
    agents = jnp.arange(num_trajectories) % c.num_agents
    theta = p.flatten(params)

    @jax.jit
    def errors(keys, agents):
        def one(k, a):
            tg = gpomdp.trajectory_gradient(trainer.policy, trainer.env, params, k, a, c.horizon, c.discount)
            g_hat = -p.flatten(tg.grad)  # trajectory_gradient returns the loss gradient -g
            exact = jax.grad(lambda th: p.agent_objective(th, a))(theta)
            return jnp.sum((g_hat - exact) ** 2)

        return jax.vmap(one)(keys, agents)

    err = np.asarray(errors(keys, agents), np.float64)
    return float(err.mean()), float(err.std(ddof=1) / math.sqrt(err.size))


def smoothness(trainer, theta_a, theta_b, points: int = 21, weights=None) -> dict:
    """L_g, L_h and D on the segment from ``theta_a`` (e.g. theta_0) to ``theta_b`` (e.g. the optimum),
    from the exact Hessian in float64 at ``points`` equally spaced points:
    L_g = max ||Hess J||_2, L_h = max over neighbouring points of ||Hess(x) - Hess(y)||_2 / ||x - y||,
    D = J(theta_b) - J(theta_a). A lower estimate of the global constants: the region the runs cross."""
    p = problem(trainer, weights)
    a = np.asarray(theta_a, np.float64).reshape(-1)
    b = np.asarray(theta_b, np.float64).reshape(-1)
    points = validate.integer("points", points, 2)
    with jax.enable_x64(True):
        f = lambda th: p.objective(th, jnp.float64)
        hess = jax.jit(jax.vmap(jax.hessian(f)))
        xs = a[None] + np.linspace(0.0, 1.0, points)[:, None] * (b - a)[None]
        H = np.asarray(hess(jnp.asarray(xs)))
        fa, fb = float(f(jnp.asarray(a))), float(f(jnp.asarray(b)))
    L_g = float(max(np.linalg.norm(h, 2) for h in H))
    step = np.linalg.norm(xs[1] - xs[0])
    L_h = (
        float(max(np.linalg.norm(H[i + 1] - H[i], 2) for i in range(points - 1)) / step) if step > 0 else 0.0
    )
    return {"L_g": L_g, "L_h": L_h, "D": fb - fa}
