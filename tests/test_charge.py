"""charge = "horizon" | "taken": an early-terminated trajectory costs its full horizon or only the steps it took
(docs/algorithms.md#simulated-time). The trainer's rounds and AFedPG's server clock are checked against the
event-heap simulation of jnigt.testing fed with the same trajectory lengths."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import Env, State

from jnigt import cli
from jnigt import testing as ref
from jnigt import timing as T
from jnigt.gradients import gpomdp
from jnigt.training import TrainConfig, Trainer, train
from jnigt.training.loop import SimulatedClockError

H = 8


class Lifetime(Env):
    """A tiny brax-style env whose episodes terminate early: at reset agent a draws a lifetime
    ``life ~ U{min_life[a], ..., max_life[a]}`` from the reset key (so a trajectory's length does not depend
    on the policy) and the episode ends at step ``life``. Observation (position, time / 10), reward ``-a^2``."""

    def __init__(self, max_life, min_life=1):
        self._max_life = jnp.asarray(max_life, jnp.int32)
        self._min_life = jnp.broadcast_to(jnp.asarray(min_life, jnp.int32), self._max_life.shape)

    def reset_agent(self, rng, agent_id):
        life = jax.random.randint(rng, (), self._min_life[agent_id], self._max_life[agent_id] + 1)
        zero = jnp.zeros((), jnp.float32)
        info = {"t": jnp.zeros((), jnp.int32), "life": life}
        return State(pipeline_state=None, obs=jnp.zeros(2), reward=zero, done=zero, metrics={}, info=info)

    def reset(self, rng):
        return self.reset_agent(rng, 0)

    def step(self, state, action):
        t = state.info["t"] + 1
        obs = jnp.stack([state.obs[0] + 0.1 * action[0], t / 10.0]).astype(jnp.float32)
        done = (t >= state.info["life"]).astype(jnp.float32)
        reward = -jnp.sum(action**2).astype(jnp.float32)
        return state.replace(obs=obs, reward=reward, done=done, info={**state.info, "t": t})

    @property
    def observation_size(self):
        return 2

    @property
    def action_size(self):
        return 1

    @property
    def backend(self):
        return "none"


BASE = dict(
    env="lqr",
    backend=None,
    policy="linear",
    horizon=H,
    num_agents=4,
    batch_size=8,
    rounds=3,
    eval_every=3,
    eval_episodes=2,
    step_model=(1.0, 2.0, 1.0, 3.0),
)


def lengths(tr, params, key, agents, js):
    """Steps each (agent, j) trajectory with key fold_in(fold_in(key, agent), j) takes (alive steps)."""

    def one(a, j):
        k = jax.random.fold_in(jax.random.fold_in(key, a), j)
        return jnp.sum(gpomdp.rollout(tr.policy, tr.env, params, k, a, H)[3])

    return np.asarray(jax.vmap(one)(jnp.asarray(agents), jnp.asarray(js)))


def rule(method, m, n):
    if method == "rennala":
        return ref.rennala_rule(m)
    if method == "malenia":
        return ref.malenia_rule(m)
    return ref.synchronized_rule(-(-m // n))


@pytest.mark.parametrize("charge", ["horizon", "taken"])
@pytest.mark.parametrize("method", ["rennala", "malenia", "synchronized"])
def test_rounds_equal_the_event_heap_fed_the_same_lengths(method, charge):
    """Round by round: close time (+ the AllReduce charge), gradients used, env steps and wasted time equal a
    heap simulation over A_ij = sum_{l<=j} L_il h_i ("taken") or (j + 1) H h_i ("horizon"), with L_il the
    steps of agent i's l-th trajectory of the round (key fold_in(fold_in(k_traj, i), l))."""
    # a short episode costs little under "taken": Malenia's fast agents deliver many more than the plan
    cfg = TrainConfig(
        **{**BASE, "method": method, "charge": charge, "comm_model": 0.5, "rounds": 2, "eval_every": 2},
        malenia_slack=8.0,
    )
    tr = Trainer(cfg, num_devices=1, env=Lifetime([3, 8, 2, 8]))
    n, m = cfg.num_agents, cfg.batch_size
    h = np.asarray(cfg.step_model)
    k = max(4 * m, tr.rounds.candidates)
    agents, js = np.repeat(np.arange(n), k), np.tile(np.arange(k), n)
    st = tr.init(cfg.seed)
    closed_early = 0
    for _ in range(cfg.rounds):
        _, _, k_traj = jax.random.split(st.key, 3)
        steps = lengths(tr, st.params, k_traj, agents, js).reshape(n, k)
        assert steps.min() >= 1 and steps.max() <= H
        cost = steps if charge == "taken" else np.full((n, k), H)
        arrivals = np.cumsum(cost * h[:, None], axis=1)
        if method == "synchronized":  # an agent stops after its share ceil(M / n)
            arrivals = arrivals[:, : -(-m // n)]
        counts, close = ref.heap_round(arrivals, rule(method, m, n))
        assert close is not None
        predicted = float(tr.next_time(st))
        before = st
        st, metrics = tr.step(st)
        np.testing.assert_allclose(float(metrics["time"]), float(before.time) + close + 0.5, rtol=1e-6)
        np.testing.assert_allclose(float(metrics["time"]), predicted, rtol=1e-6)
        assert int(metrics["grads_used"]) == counts.sum()
        used_steps = sum(int(steps[i, : counts[i]].sum()) for i in range(n))
        assert int(st.env_steps - before.env_steps) == used_steps
        np.testing.assert_allclose(
            float(metrics["wasted_time"]), ref.wasted_time(arrivals, counts, close), rtol=1e-6
        )
        closed_early += int(np.any(steps[counts > 0] < H))
    assert closed_early  # the episodes really ended early


@pytest.mark.parametrize("charge", ["horizon", "taken"])
def test_afedpg_server_times_equal_the_event_heap(charge):
    """AFedPG: server times and env steps equal jnigt.testing.afedpg_heap fed with the lengths of the
    trajectories the agents run ("taken": sampled at each restart, key k_traj of that step; "horizon": every
    trajectory costs H, its gradient is sampled at the arrival)."""
    cfg = TrainConfig(
        **{**BASE, "method": "afedpg", "charge": charge, "comm_model": "sqrt", "rounds": 10, "eval_every": 10}
    )
    tr = Trainer(cfg, num_devices=1, env=Lifetime([3, 8, 2, 8]))
    n, s = cfg.num_agents, cfg.rounds
    h = np.asarray(cfg.step_model, np.float32)
    agents = jnp.arange(n)
    st = tr.init(cfg.seed)

    @jax.jit
    def lens(keys, fold):  # [len(keys), n] steps of agent a's trajectory with key fold_in(k, a) (fold) or k
        one = lambda k, a: jnp.sum(
            gpomdp.rollout(tr.policy, tr.env, st.params, jnp.where(fold, jax.random.fold_in(k, a), k), a, H)[
                3
            ]
        )
        return jax.vmap(lambda k: jax.vmap(lambda a: one(k, a))(agents))(keys)

    key = jax.random.split(jax.random.key(cfg.seed))[0]
    key = jax.random.split(key)[0]
    if charge == "taken":
        key, tk = jax.random.split(key)
        first = np.asarray(lens(tk[None], True)[0])
    chex.assert_trees_all_equal(jax.random.key_data(st.key), jax.random.key_data(key))
    restart_keys = []  # update u's k_traj: the key of the trajectory the arriving agent starts ("taken")
    for _ in range(s):
        key, _, k_traj = jax.random.split(key, 3)
        restart_keys.append(k_traj)
    later = np.asarray(lens(jnp.stack(restart_keys), False))
    if charge == "taken":
        agents_ref, times_ref = ref.afedpg_heap(first * h, later * h, T.comm_times(n, "sqrt"))
        running = first.copy()
        used = []
        for u, a in enumerate(agents_ref):
            used.append(running[a])
            running[a] = later[u, a]
    else:
        agents_ref, times_ref = ref.afedpg_heap(H * h, np.tile(H * h, (s, 1)), T.comm_times(n, "sqrt"))
        used = [later[u, a] for u, a in enumerate(agents_ref)]
    assert float(tr.next_time(st)) == times_ref[0]
    _, metrics, _ = tr.run_chunk(st)
    np.testing.assert_array_equal(np.asarray(metrics["time"]), times_ref)
    np.testing.assert_array_equal(np.asarray(metrics["env_steps"]), np.cumsum(used))
    assert min(used) < H  # the episodes really ended early


@pytest.mark.parametrize("method", ["rennala", "malenia", "synchronized", "afedpg"])
def test_taken_equals_horizon_when_no_episode_ends_early(method):
    """Every episode lasts H steps (lifetime H): "taken" charges what "horizon" does. Under jitter both sum the
    same durations, so the clock is identical; the aggregating methods sample the same trajectories (the first
    counts_i candidates carry the slots' keys) and reach the same parameters."""
    kw = {**BASE, "method": method, "jitter": 0.3, "rounds": 2, "eval_every": 2}
    runs = {}
    for charge in ("horizon", "taken"):
        tr = Trainer(TrainConfig(**kw, charge=charge), num_devices=1, env=Lifetime([H] * 4, min_life=H))
        st, ms = tr.init(0), []
        for _ in range(2):
            st, m = tr.step(st)
            ms.append(m)
        runs[charge] = st, jax.tree.map(lambda *x: np.stack(x), *ms)
    (st_h, m_h), (st_t, m_t) = runs["horizon"], runs["taken"]
    for name in ("time", "env_steps", "grads_used", "wasted_time", "comms"):
        np.testing.assert_array_equal(m_t[name], m_h[name], err_msg=name)
    assert int(st_t.env_steps) == H * int(np.sum(m_t["grads_used"]))
    if method != "afedpg":  # AFedPG samples at the restart under "taken", at the arrival under "horizon"
        chex.assert_trees_all_close(st_t.params, st_h.params, atol=1e-5, rtol=1e-5)


def test_taken_is_refused_with_time_unit_trajectory_and_unknown_charges():
    with pytest.raises(ValueError, match="charge: 'taken'.*time_unit='step'"):
        TrainConfig(**BASE, charge="taken", time_unit="trajectory")
    with pytest.raises(ValueError, match="charge.*horizon, taken"):
        TrainConfig(**BASE, charge="steps")
    with pytest.raises(ValueError, match="charge='taken'.*time_unit='step'"):
        T.make_timing(2, charge="taken", time_unit="trajectory")
    with pytest.raises(ValueError, match="charge must be one of horizon, taken"):
        T.make_timing(2, charge=None)
    assert TrainConfig(**BASE).charge == "horizon"
    assert T.make_timing(2, time_unit="trajectory").charge == "horizon"


def test_cli_parses_charge(capsys):
    _, (c,) = cli.parse_train(["--method", "rennala", "--charge", "taken"])
    assert c.charge == "taken"
    assert cli.main(["train", "--charge", "taken", "--time-unit", "trajectory"]) == 2
    assert "charge: 'taken'" in capsys.readouterr().err


def test_malenia_running_out_of_candidates_stops_with_an_error_naming_the_option():
    """Agent 0's episodes end after 1 step, agent 1's after H: the round closes at agent 1's first arrival (H)
    with agent 0 at H deliveries, beyond the plan (1, 1) times malenia_slack = 1 (3 candidates)."""
    cfg = TrainConfig(
        **{**BASE, "method": "malenia", "num_agents": 2, "batch_size": 2, "step_model": "equal"},
        charge="taken",
        malenia_slack=1.0,
    )
    tr = Trainer(cfg, num_devices=1, env=Lifetime([1, H], min_life=[1, H]))
    assert tr.rounds.candidates == 3
    with pytest.raises(SimulatedClockError, match="charge='taken'.*malenia_slack"):
        tr.run_chunk(tr.init(0))


def test_rounds_from_arrivals_equal_the_heap_on_random_lengths():
    """The *_from_arrivals rounds on A = cumsum(L h f) equal heap_round (exact integer times; ties included)."""
    rng = np.random.default_rng(0)
    n, m, k = 5, 7, 14
    for trial in range(10):
        t = T.make_timing(n, tuple(rng.integers(1, 4, size=n).astype(float)), jitter=0.0)
        steps = rng.integers(1, H + 1, size=(n, k))
        arr = T.arrival_times(t, H, None, k, steps=jnp.asarray(steps))
        want = np.cumsum(steps * np.asarray(t.step_time)[:, None], axis=1)
        np.testing.assert_array_equal(np.asarray(arr), want)
        for rnd, (counts, close) in (
            (T.rennala_from_arrivals(t, arr, m), ref.heap_round(want, ref.rennala_rule(m))),
            (T.malenia_from_arrivals(t, arr, m), ref.heap_round(want, ref.malenia_rule(m))),
            (T.synchronized_from_arrivals(t, arr, 2), ref.heap_round(want[:, :2], ref.synchronized_rule(2))),
        ):
            ran_out = close is None or np.any((counts == k) & (want[:, -1] < close))
            if ran_out:  # Malenia may need more than k arrivals per agent: the clock says inf
                assert not np.isfinite(float(rnd.duration)), trial
                continue
            np.testing.assert_array_equal(np.asarray(rnd.counts), counts)
            assert float(rnd.duration) == close
            np.testing.assert_allclose(float(rnd.wasted), ref.wasted_time(want, counts, close), rtol=1e-6)


@pytest.mark.parametrize("method,num_agents,devices", [("rennala", 3, 2), ("malenia", 4, 2)])
def test_taken_gives_the_same_numbers_on_any_device_count(method, num_agents, devices):
    """Candidates are sampled per device (agents padded when n is not a multiple of d) and their lengths
    gathered: 1 and d devices close the same rounds and reach the same parameters."""
    kw = {**BASE, "method": method, "num_agents": num_agents, "step_model": "sqrt", "charge": "taken"}
    kw.update(rounds=2, eval_every=2, malenia_slack=8.0)
    out = []
    for d in (1, devices):
        tr = Trainer(TrainConfig(**kw), num_devices=d, env=Lifetime([3, 8, 2, 8][:num_agents]))
        st = tr.init(0)
        st, m = tr.step(st)
        out.append((st.params, m["time"], m["env_steps"], m["grads_used"]))
    chex.assert_trees_all_close(out[0], out[1], atol=1e-5, rtol=1e-5)


def test_ray_executor_refuses_taken():
    """The Ray executor runs in real time (a fixed emulated delay per trajectory): "taken" is refused before
    Ray starts."""
    pytest.importorskip("ray")
    from jnigt.executors.ray import train_ray

    with pytest.raises(ValueError, match="charge='taken'.*real time"):
        train_ray(TrainConfig(**BASE, charge="taken"), None)


@pytest.mark.parametrize("method", ["rennala", "afedpg"])
def test_taken_run_killed_after_a_chunk_resumes_bit_identically(method, tmp_path):
    """The "taken" state (AFedPG's pending trajectories and their steps) survives the orbax checkpoint."""
    cfg = TrainConfig(**{**BASE, "method": method, "charge": "taken", "rounds": 4, "eval_every": 2})
    _, full, rows_full = train(cfg, str(tmp_path / "a"), num_devices=1, progress=False, tensorboard=False)
    train(cfg, str(tmp_path / "b"), num_devices=1, progress=False, tensorboard=False, stop_after_chunks=1)
    _, resumed, rows_resumed = train(
        cfg, str(tmp_path / "b"), num_devices=1, progress=False, tensorboard=False
    )
    chex.assert_trees_all_equal(full, resumed)
    assert rows_full == rows_resumed and rows_full[-1]["round"] == 4
