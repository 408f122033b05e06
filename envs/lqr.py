"""Linear-quadratic regulator as a Brax env, with exact ground truth for the linear-Gaussian policy.

    s_{t+1} = A s_t + B a_t + w_t,   w_t ~ N(0, noise_std^2 I),   s_0 ~ N(s0_mean, init_std^2 I)
    r_t     = -(s_t^T Q s_t + a_t^T R a_t)                         (never terminates)

For the policy u ~ N(W s + b, diag(std^2)), a = u, the truncated objective
J_H = E[sum_{t<H} gamma^t r_t] is computed exactly by propagating the mean m_t and covariance S_t of s_t:

    E[r_t]  = -( tr(Q S_t) + m_t^T Q m_t + tr(R Su_t) + mu_t^T R mu_t ),  mu_t = W m_t + b,
              Su_t = W S_t W^T + diag(std^2)
    m_{t+1} = F m_t + B b,   S_{t+1} = F S_t F^T + B diag(std^2) B^T + noise_std^2 I,   F = A + B W

and its gradient is jax.grad of that formula (exact, deterministic).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env, State

from jnigt import validate

_DEFAULT_A = ((0.9, 0.2), (0.0, 0.9))
_DEFAULT_B = ((0.0,), (0.5,))


def _as_matrix(x, name, shape=None):
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric matrix, got {x!r}") from None
    if arr.ndim != 2 or (shape is not None and arr.shape != shape):
        raise ValueError(f"{name} must have shape {shape if shape else '(rows, cols)'}, got {arr.shape}")
    return arr


def _transition(state: State, s, a, A, B, Q, R, noise_std) -> State:
    """One step of s' = A s + B a + noise_std * N(0, I), reward -(s'Qs + a'Ra): the step of LQR and of
    each agent's system in HeterogeneousLQR."""
    rng, k = jax.random.split(state.info["rng"])
    reward = -(s @ Q @ s + a @ R @ a)
    s_next = A @ s + B @ a + noise_std * jax.random.normal(k, s.shape, jnp.float32)
    return state.replace(
        pipeline_state=s_next,
        obs=s_next,
        reward=reward,
        done=jnp.zeros((), jnp.float32),
        info={**state.info, "rng": rng},
    )


class LQR(Env):
    """Discrete-time stochastic LQR (state dim n, action dim m). Observation = state."""

    def __init__(
        self,
        A=_DEFAULT_A,
        B=_DEFAULT_B,
        Q=None,
        R=None,
        noise_std: float = 0.1,
        init_std: float = 1.0,
        s0_mean=None,
    ):
        A = _as_matrix(A, "A")
        n = A.shape[0]
        if A.shape != (n, n):
            raise ValueError(f"A must be square, got shape {A.shape}")
        B = _as_matrix(B, "B")
        if B.shape[0] != n:
            raise ValueError(f"B must have {n} rows like A, got shape {B.shape}")
        m = B.shape[1]
        Q = np.eye(n) if Q is None else _as_matrix(Q, "Q", (n, n))
        R = 0.1 * np.eye(m) if R is None else _as_matrix(R, "R", (m, m))
        noise_std = validate.real("noise_std", noise_std, low=0.0)
        init_std = validate.real("init_std", init_std, low=0.0)
        s0 = np.zeros(n) if s0_mean is None else np.asarray(s0_mean, dtype=np.float64)
        if s0.shape != (n,):
            raise ValueError(f"s0_mean must have shape ({n},), got {s0.shape}")
        self.A, self.B, self.Q, self.R = A, B, Q, R
        self.noise_std = float(noise_std)
        self.init_std = float(init_std)
        self.s0_mean = s0
        self._n, self._m = n, m

    # -------------------------------------------------------------- Brax Env interface
    def reset(self, rng: jax.Array) -> State:
        rng, k = jax.random.split(rng)
        s = jnp.asarray(self.s0_mean, jnp.float32) + self.init_std * jax.random.normal(
            k, (self._n,), jnp.float32
        )
        zero = jnp.zeros((), jnp.float32)
        return State(pipeline_state=s, obs=s, reward=zero, done=zero, metrics={}, info={"rng": rng})

    def step(self, state: State, action: jax.Array) -> State:
        s = state.pipeline_state
        a = jnp.asarray(action, jnp.float32).reshape((self._m,))
        A, B = jnp.asarray(self.A, jnp.float32), jnp.asarray(self.B, jnp.float32)
        Q, R = jnp.asarray(self.Q, jnp.float32), jnp.asarray(self.R, jnp.float32)
        return _transition(state, s, a, A, B, Q, R, self.noise_std)

    @property
    def observation_size(self) -> int:
        return self._n

    @property
    def action_size(self) -> int:
        return self._m

    @property
    def backend(self) -> str:
        return "lqr"

    # -------------------------------------------------------------- ground truth
    def riccati_gain(self, discount: float, tol: float = 1e-12, max_iter: int = 100_000) -> np.ndarray:
        """Optimal K (a = -K s) of the discounted infinite-horizon LQR, by iterating the Riccati equation

        P = Q + g A^T P A - g^2 A^T P B (R + g B^T P B)^{-1} B^T P A,   K = g (R + g B^T P B)^{-1} B^T P A.
        """
        g = validate.probability("discount", discount)
        A, B, Q, R = self.A, self.B, self.Q, self.R
        P = Q.copy()
        for _ in range(max_iter):
            K = g * np.linalg.solve(R + g * B.T @ P @ B, B.T @ P @ A)
            P_new = Q + K.T @ R @ K + g * (A - B @ K).T @ P @ (A - B @ K)
            if np.max(np.abs(P_new - P)) < tol * max(1.0, np.max(np.abs(P))):
                P = P_new
                break
            P = P_new
        return g * np.linalg.solve(R + g * B.T @ P @ B, B.T @ P @ A)

    def system(self, dtype=jnp.float32) -> dict[str, jax.Array]:
        """The system as arrays of ``dtype``: A, B, Q, R, s0_mean, init_var = init_std^2, noise_var."""
        return _system_arrays(self, dtype)

    def exact_objective(self, W, b, std, horizon: int, discount: float, dtype=jnp.float32) -> jax.Array:
        """J_H(W, b, std) = E[sum_{t<H} gamma^t r_t] under u ~ N(W s + b, diag(std^2)), a = u (jnp, differentiable).

        ``dtype``: of the system's arrays (float64 under ``jax.enable_x64`` for a reference optimum)."""
        validate.integer("horizon", horizon)
        return _objective(self.system(dtype), W, b, std, horizon, discount, dtype)

    def exact_objective_and_grad(self, W, b, std, horizon: int, discount: float):
        """(J_H, (dJ/dW, dJ/db, dJ/dstd)): exact, via jax.grad of ``exact_objective``."""
        f = lambda W, b, std: self.exact_objective(W, b, std, horizon, discount)
        return jax.value_and_grad(f, argnums=(0, 1, 2))(
            jnp.asarray(W, jnp.float32), jnp.asarray(b, jnp.float32), jnp.asarray(std, jnp.float32)
        )

    def exact_policy_objective_and_grad(self, policy: Any, params: Any, horizon: int, discount: float):
        """(J_H, dJ_H/dparams) for a linear GaussianPolicy; the grad tree matches ``params`` (ascent sign, +J)."""
        _check_linear_policy(policy)
        f = lambda p: self.exact_objective(*linear_policy_to_wbs(policy, p), horizon, discount)
        return jax.value_and_grad(f)(params)


def _system_host(lqr: LQR) -> dict[str, np.ndarray]:
    # the variances are squared in float64 on the host, then cast (as a Python float times a dtype array)
    return dict(
        A=lqr.A,
        B=lqr.B,
        Q=lqr.Q,
        R=lqr.R,
        s0_mean=lqr.s0_mean,
        init_var=np.float64(lqr.init_std**2),
        noise_var=np.float64(lqr.noise_std**2),
    )


def _system_arrays(lqr: LQR, dtype) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v, dtype) for k, v in _system_host(lqr).items()}


def _objective(sys: dict, W, b, std, horizon: int, discount, dtype) -> jax.Array:
    """J_H of one system (``_system_arrays``) by the mean/covariance recursion of the module docstring."""
    A, B, Q, R = sys["A"], sys["B"], sys["Q"], sys["R"]
    n = A.shape[0]
    W, b, std = jnp.asarray(W), jnp.asarray(b), jnp.asarray(std)
    m = sys["s0_mean"]
    S = sys["init_var"] * jnp.eye(n, dtype=dtype)
    noise = sys["noise_var"] * jnp.eye(n, dtype=dtype)
    Su_noise = jnp.diag(std**2)
    F = A + B @ W

    def body(carry, _):
        m, S, J, w = carry
        mu = W @ m + b
        Su = W @ S @ W.T + Su_noise
        er = -(jnp.trace(Q @ S) + m @ Q @ m + jnp.trace(R @ Su) + mu @ R @ mu)
        m = F @ m + B @ b
        S = F @ S @ F.T + B @ Su_noise @ B.T + noise
        return (m, S, J + w * er, w * discount), None

    init = (m, S, jnp.zeros((), dtype), jnp.ones((), dtype))
    (_, _, J, _), _ = jax.lax.scan(body, init, None, length=horizon)
    return J


def _check_linear_policy(policy: Any) -> None:
    if (
        tuple(getattr(policy, "hidden_sizes", (0,))) != ()
        or getattr(policy, "action_scale", 0) is not None
        or getattr(policy, "state_dependent_std", True)
    ):
        raise ValueError(
            "policy must be GaussianPolicy(hidden_sizes=(), action_scale=None, state_dependent_std=False)"
        )


def linear_policy_to_wbs(policy: Any, params: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Policy params -> (W [m, n], b [m], std [m]) with mu = W s + b, std = softplus(raw) + min_std."""
    _check_linear_policy(policy)
    p = params["params"]
    W, b = p["mean"]["kernel"].T, p["mean"]["bias"]
    if getattr(policy, "fixed_std", None) is not None:
        return W, b, jnp.full(b.shape, policy.fixed_std, b.dtype)
    return W, b, policy.raw_std_to_std(p["raw_std"])


def wbs_to_linear_policy_params(policy: Any, W, b, std=None) -> Any:
    """Inverse of ``linear_policy_to_wbs`` (std must exceed policy.min_std; with ``policy.fixed_std`` the
    params hold no std and ``std`` must be None)."""
    _check_linear_policy(policy)
    W = jnp.asarray(W, jnp.float32)
    if W.shape != (policy.action_size, policy.obs_size):
        raise ValueError(f"W must have shape {(policy.action_size, policy.obs_size)}, got {W.shape}")
    mean = {"kernel": W.T, "bias": jnp.asarray(b, jnp.float32).reshape(policy.action_size)}
    if getattr(policy, "fixed_std", None) is not None:
        if std is not None:
            raise ValueError(f"std: the policy's std is fixed at {policy.fixed_std}; pass std=None")
        return {"params": {"mean": mean}}
    if std is None:
        raise ValueError("std: the policy learns its std; give one value per action dimension")
    raw_std = policy.std_to_raw_std(jnp.asarray(std, jnp.float32).reshape(policy.action_size))
    return {"params": {"mean": mean, "raw_std": raw_std}}


class HeterogeneousLQR(Env):
    """Agents with different LQR systems: agent i runs ``systems[i mod p]`` (p = len(systems)).

    Every system has the same state and action sizes; A, B, Q, R, noise_std, init_std and s0_mean may all
    differ. The per-system values are stacked with a leading axis p and gathered with the agent id, as the
    wrappers of ``jnigt_envs.heterogeneous`` do: ``reset_agent(rng, agent_id)`` stores ``agent_id`` (int32)
    in ``state.info['agent_id']`` and ``step`` reads it, so a batch of agents runs under one ``jax.vmap``;
    ``reset(rng)`` is ``reset_agent(rng, 0)``. A one-system ``HeterogeneousLQR([lqr])`` samples exactly
    the trajectories of ``lqr``.

    Ground truth: with n agents, the objective of the distributed problem is J = (1/n) sum_{i<n} J_i with J_i
    the exact objective of agent i's system (``exact_objective(..., num_agents=n)``); ``weights`` gives any
    other convex combination of the agents (e.g. the arrival-rate weights of AFedPG's fixed point).
    """

    def __init__(self, systems):
        systems = list(systems) if isinstance(systems, (list, tuple)) else None
        if not systems or not all(isinstance(s, LQR) for s in systems):
            raise ValueError("systems must be a non-empty list of jnigt_envs.LQR")
        n, m = systems[0].observation_size, systems[0].action_size
        for k, s in enumerate(systems):
            if (s.observation_size, s.action_size) != (n, m):
                raise ValueError(
                    f"systems[{k}] has state/action sizes {(s.observation_size, s.action_size)}; "
                    f"systems[0] has {(n, m)}: every system needs the same sizes"
                )
        self.systems = tuple(systems)
        self._n, self._m = n, m
        host = {k: np.stack([_system_host(s)[k] for s in systems]) for k in _system_host(systems[0])}
        self._host = host
        self._std = {
            k: np.stack([np.float64(getattr(s, k)) for s in systems]) for k in ("init_std", "noise_std")
        }

    @property
    def num_systems(self) -> int:
        return len(self.systems)

    # -------------------------------------------------------------- Brax Env interface
    def _gather(self, name, agent_id, dtype=jnp.float32):
        table = self._std[name] if name in self._std else self._host[name]
        return jnp.asarray(table, dtype)[jnp.mod(agent_id, self.num_systems)]

    def reset_agent(self, rng: jax.Array, agent_id) -> State:
        agent_id = jnp.asarray(agent_id, jnp.int32)
        rng, k = jax.random.split(rng)
        s = self._gather("s0_mean", agent_id) + self._gather("init_std", agent_id) * jax.random.normal(
            k, (self._n,), jnp.float32
        )
        zero = jnp.zeros((), jnp.float32)
        info = {"rng": rng, "agent_id": agent_id}
        return State(pipeline_state=s, obs=s, reward=zero, done=zero, metrics={}, info=info)

    def reset(self, rng: jax.Array) -> State:
        return self.reset_agent(rng, 0)

    def step(self, state: State, action: jax.Array) -> State:
        agent_id = state.info["agent_id"]
        s = state.pipeline_state
        a = jnp.asarray(action, jnp.float32).reshape((self._m,))
        A, B = self._gather("A", agent_id), self._gather("B", agent_id)
        Q, R = self._gather("Q", agent_id), self._gather("R", agent_id)
        return _transition(state, s, a, A, B, Q, R, self._gather("noise_std", agent_id))

    @property
    def observation_size(self) -> int:
        return self._n

    @property
    def action_size(self) -> int:
        return self._m

    @property
    def backend(self) -> str:
        return "lqr"

    # -------------------------------------------------------------- ground truth
    def agent_weights(self, num_agents: int | None = None, weights=None) -> np.ndarray:
        """Weight of each system in the objective: agents i < num_agents (default p) with ``weights``
        (default uniform; nonnegative, normalised to sum 1) summed over the agents that run it. [p], float64."""
        n = self.num_systems if num_agents is None else num_agents
        n = validate.integer("num_agents", n)
        w = np.ones(int(n)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
            raise ValueError(f"weights must be {n} finite numbers >= 0, not all 0, got {weights!r}")
        return np.bincount(np.arange(n) % self.num_systems, weights=w / w.sum(), minlength=self.num_systems)

    def system_objectives(self, W, b, std, horizon: int, discount: float, dtype=jnp.float32) -> jax.Array:
        """[p]: J_H of every system under the same policy (W, b, std)."""
        validate.integer("horizon", horizon)
        systems = {k: jnp.asarray(v, dtype) for k, v in self._host.items()}
        return jax.vmap(lambda sys: _objective(sys, W, b, std, horizon, discount, dtype))(systems)

    def exact_objective(
        self, W, b, std, horizon: int, discount: float, num_agents=None, weights=None, dtype=jnp.float32
    ) -> jax.Array:
        """J = sum_i w_i J_i over agents i < num_agents (default: p, one agent per system), w uniform by
        default (J = (1/n) sum_i J_i), agent i running system i mod p."""
        w = jnp.asarray(self.agent_weights(num_agents, weights), dtype)
        return jnp.sum(w * self.system_objectives(W, b, std, horizon, discount, dtype))

    def exact_policy_objective_and_grad(
        self, policy: Any, params: Any, horizon: int, discount: float, num_agents=None, weights=None
    ):
        """(J, dJ/dparams) for a linear GaussianPolicy, J as in ``exact_objective`` (ascent sign)."""
        _check_linear_policy(policy)
        f = lambda p: self.exact_objective(
            *linear_policy_to_wbs(policy, p), horizon, discount, num_agents=num_agents, weights=weights
        )
        return jax.value_and_grad(f)(params)


#: The second system of ``two_lqr_systems``: the default A with the actuator on the first state instead of
#: the second, so the two systems' optimal gains differ in which state they feed back.
_SECOND_B = ((0.5,), (0.0,))


def two_lqr_systems(noise_std: float = 0.1, init_std: float = 1.0) -> list[LQR]:
    """The systems of env ``lqr_hetero``: ``LQR()`` (actuator on the second state) and the same A, Q, R
    with B = (0.5, 0)^T (actuator on the first state); the same noise and initial state spread."""
    return [
        LQR(noise_std=noise_std, init_std=init_std),
        LQR(B=_SECOND_B, noise_std=noise_std, init_std=init_std),
    ]
