"""Hard edges of jnigt.transforms: composition with Optax, starved agents, dropped gradients, bad input."""

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jnigt
from jnigt import rules
from jnigt.transforms import inactive_agents, starved_agents


def _grad(theta):
    a = jnp.array([1.0, 3.0, 0.5])
    return a * theta + jnp.array([0.2, -0.1, 0.3])


def _nigt_run(opt, steps=6, jit=False):
    params = jnp.array([1.0, -2.0, 0.5])
    state = opt.init(params)
    update = jax.jit(opt.update) if jit else opt.update
    out = []
    for _ in range(steps):
        upd, state = update(_grad(params), state, params)
        params = optax.apply_updates(params, upd)
        out.append(params)
    return jnp.stack(out), state


# ---------------------------------------------------------------- composition with Optax


def test_inject_hyperparams_gives_the_nigt_trajectory():
    ref, ref_state = _nigt_run(jnigt.nigt(0.1, 0.5))
    injected = optax.inject_hyperparams(jnigt.nigt)(learning_rate=0.1, momentum=0.5)
    ours, state = _nigt_run(injected)
    chex.assert_trees_all_close(ours, ref, atol=1e-6)
    chex.assert_trees_all_close(
        jnigt.nigt_eval_params(ours[-1], state), jnigt.nigt_eval_params(ref[-1], ref_state)
    )
    # jitted: the hyperparameters arrive as tracers
    injected = optax.inject_hyperparams(jnigt.nigt)(learning_rate=jnp.array(0.1), momentum=0.5)
    ours_jit, _ = _nigt_run(injected, jit=True)
    chex.assert_trees_all_close(ours_jit, ref, atol=1e-6)


def test_momentum_schedule_keeps_theta_recoverable():
    # eta changes between steps: theta~_t = theta_t + c_t Delta_t must hold with each step's own c_t
    opt = optax.inject_hyperparams(jnigt.nigt)(learning_rate=0.1, momentum=lambda t: 0.2 + 0.1 * t)
    params = jnp.array([1.0, -2.0, 0.5])
    state = opt.init(params)
    theta = params
    for _ in range(5):
        upd, state = opt.update(_grad(params), state, params)
        params = optax.apply_updates(params, upd)
        nigt_state = state.inner_state
        theta = theta + nigt_state.delta
        chex.assert_trees_all_close(jnigt.nigt_eval_params(params, state), theta, atol=1e-6)


def test_vmap_over_learning_rates_and_momenta_matches_single_runs():
    lrs = jnp.array([0.05, 0.1, 0.2])
    moms = jnp.array([0.3, 0.5, 1.0])

    def run(lr, mom):
        return _nigt_run(jnigt.nigt(lr, mom), steps=4)[0]

    batched = jax.jit(jax.vmap(run))(lrs, moms)
    singles = jnp.stack([run(float(lr), float(m)) for lr, m in zip(lrs, moms)])
    chex.assert_trees_all_close(batched, singles, atol=1e-6)


def test_jax_and_numpy_scalars_are_accepted():
    ref, _ = _nigt_run(jnigt.nigt(0.1, 0.5))
    for lr, mom in (
        (jnp.array(0.1), jnp.array(0.5)),
        (np.float32(0.1), np.float64(0.5)),
        (np.array(0.1), 0.5),
    ):
        chex.assert_trees_all_close(_nigt_run(jnigt.nigt(lr, mom))[0], ref, atol=1e-6)
    opt = jnigt.malenia(optax.sgd(1.0), np.int64(2), num_agents=np.int32(2))
    _, s = opt.update(jnp.ones((2, 3)), opt.init(jnp.zeros(3)), counts=np.array([1, 1]))
    assert bool(s.closed)
    jnigt.rennala(optax.sgd(1.0), np.int16(3), init_batch_size=np.uint8(4))
    jnigt.synchronized(optax.sgd(1.0), np.int64(1), np.int64(3))


def _contrib(rng, n):
    return {"w": jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)}


def _trajectory(opt, calls, n=3):
    rng = np.random.default_rng(0)
    params = {"w": jnp.zeros(3)}
    state = opt.init(params)
    update = jax.jit(opt.update)
    for _ in range(calls):
        upd, state = update(_contrib(rng, n), state, params, counts=jnp.ones(n, jnp.int32))
        params = optax.apply_updates(params, upd)
    return params, state


def test_apply_if_finite_composes_inside_the_aggregator():
    # The aggregator already drops non-finite contributions per agent; apply_if_finite guards the
    # inner step (e.g. an aggregate that overflowed) and goes inside, around the inner optimizer.
    plain, _ = _trajectory(jnigt.rennala(jnigt.nigt(0.1, 0.5), 2), 6)
    guarded, state = _trajectory(jnigt.rennala(optax.apply_if_finite(jnigt.nigt(0.1, 0.5), 3), 2), 6)
    chex.assert_trees_all_close(guarded, plain, atol=1e-6)
    assert int(state.inner_state.total_notfinite) == 0
    jnigt.transforms.check_not_wrapped(state)  # inside the aggregator: accepted
    # an overflowing aggregate is refused by apply_if_finite, and the NIGT state stays finite
    opt = jnigt.rennala(optax.apply_if_finite(jnigt.nigt(0.1, 0.5), 3), 1)
    p = jnp.zeros(2)
    s = opt.init(p)
    big = jnp.full((2, 2), 3e38, jnp.float32)  # finite per agent, the pooled sum overflows
    u, s = jax.jit(opt.update)(big, s, p, counts=jnp.array([1, 1]))
    chex.assert_trees_all_close(u, jnp.zeros(2))
    assert int(s.inner_state.total_notfinite) == 1
    chex.assert_tree_all_finite(s.inner_state.inner_state)


def test_optax_wrappers_outside_the_aggregator_fail_loudly():
    # apply_if_finite, conditionally_transform and conditionally_mask fall back on the incoming updates
    # (contributions, with the agent axis) where the aggregator returns params-shaped updates: lax.cond
    # refuses the two branches at the first update, eagerly and under jit (README.md, errors table)
    agg = jnigt.rennala(jnigt.nigt(0.1, 0.5), 2)
    never = lambda step: step < 0
    p = jnp.zeros(2)
    for opt in (
        optax.apply_if_finite(agg, 3),
        optax.conditionally_transform(agg, never),
        optax.conditionally_mask(agg, never),
    ):
        # recognised from the wrapper's state before anything is traced (AggregatorTrainState.create)
        with pytest.raises(TypeError, match=r"^optax\.\w+ cannot wrap a jnigt aggregator"):
            jnigt.transforms.check_not_wrapped(opt.init(p))
        for update in (opt.update, jax.jit(opt.update)):
            with pytest.raises(
                TypeError, match=r"(?s)cond branches must have equal output types.*float32\[2\]"
            ):
                update(jnp.ones((2, 2)), opt.init(p), p, counts=jnp.array([1, 1]))


def test_inject_hyperparams_inside_aggregators_under_scan():
    for wrap in (
        lambda inner: jnigt.rennala(inner, 2),
        lambda inner: jnigt.malenia(inner, 2, num_agents=3),
        lambda inner: jnigt.synchronized(inner, 1, num_agents=3),
    ):
        plain, _ = _trajectory(wrap(jnigt.nigt(0.1, 0.5)), 4)
        injected, _ = _trajectory(
            wrap(optax.inject_hyperparams(jnigt.nigt)(learning_rate=0.1, momentum=0.5)), 4
        )
        chex.assert_trees_all_close(injected, plain, atol=1e-6)


# ---------------------------------------------------------------- starved agents (Malenia)

BAD = 1  # agent 1 only ever sends NaN


def _poisoned_calls(opt, calls, n=3, per_call=2):
    params = jnp.zeros(2)
    state = opt.init(params)
    update = jax.jit(opt.update)
    g = (
        jnp.tile(jnp.arange(1.0, n + 1.0)[:, None], (1, 2)) * per_call
    )  # agent i's gradients all equal (i+1, i+1)
    g = g.at[BAD].set(jnp.nan)
    counts = jnp.full(n, per_call, jnp.int32)
    history = []
    for _ in range(calls):
        upd, state = update(g, state, params, counts=counts)
        params = optax.apply_updates(params, upd)
        history.append((upd, state))
    return params, state, history


def test_malenia_without_drop_never_closes_and_reports_the_starved_agent():
    _, state, _ = _poisoned_calls(jnigt.malenia(optax.sgd(1.0), batch_size=3, num_agents=3), calls=12)
    assert int(state.rounds) == 0
    assert starved_agents(state, patience=12) == [BAD]
    assert starved_agents(state, patience=13) == []
    assert inactive_agents(state) == []
    chex.assert_trees_all_equal(state.starved, jnp.array([0, 12, 0], jnp.int32))
    # with a leading device axis ([devices, local agents]) the ids are global
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), state)
    assert starved_agents(stacked, 12) == [BAD, 3 + BAD]
    assert starved_agents(jnigt.rennala(optax.sgd(1.0), 2).init(jnp.zeros(2)), 1) == []


def test_malenia_drop_after_drops_the_agent_and_averages_the_others():
    k = 3
    params, state, history = _poisoned_calls(
        jnigt.malenia(optax.sgd(1.0), batch_size=2, num_agents=3, drop_after=k), calls=6
    )
    closed = [bool(s.closed) for _, s in history]
    assert closed == [False, False, True, True, True, True]  # dropped on the k-th call, closes from then on
    assert inactive_agents(state) == [BAD]
    assert starved_agents(state, 1) == []  # a dropped agent is no longer "starved"
    # the step is the mean over the remaining agents 0 and 2: ((1, 1) + (3, 3)) / 2
    chex.assert_trees_all_close(history[2][0], -jnp.array([2.0, 2.0]))
    chex.assert_trees_all_close(params, -4 * jnp.array([2.0, 2.0]))
    # every gradient of the dropped agent is counted as dropped
    assert int(state.dropped) == 6 * 2


def test_malenia_never_drops_the_last_agent():
    opt = jnigt.malenia(optax.sgd(1.0), batch_size=1, num_agents=2, drop_after=1)
    s = opt.init(jnp.zeros(1))
    for _ in range(3):
        _, s = opt.update(jnp.full((2, 1), jnp.nan), s, counts=jnp.array([1, 1]))
    assert inactive_agents(s) == [] and int(s.rounds) == 0 and int(s.dropped) == 6


def test_malenia_drop_after_is_validated():
    with pytest.raises(ValueError, match="drop_after must be an int >= 1"):
        jnigt.malenia(optax.sgd(1.0), 2, 2, drop_after=0)
    with pytest.raises(TypeError, match="drop_after"):
        jnigt.malenia(optax.sgd(1.0), 2, 2, drop_after=True)
    with pytest.raises(ValueError, match="patience"):
        starved_agents(jnigt.malenia(optax.sgd(1.0), 2, 2).init(jnp.zeros(1)), 0)
    with pytest.raises(TypeError, match="AggregatorState"):
        starved_agents(optax.sgd(1.0).init(jnp.zeros(1)), 3)


def test_slow_agents_are_not_starved():
    # an agent that sends nothing (count 0, finite zeros) is slow, not starved
    opt = jnigt.malenia(optax.sgd(1.0), batch_size=8, num_agents=2, drop_after=1)
    s = opt.init(jnp.zeros(1))
    for _ in range(5):
        _, s = opt.update(jnp.array([[1.0], [0.0]]), s, counts=jnp.array([1, 0]))
    assert inactive_agents(s) == [] and starved_agents(s, 1) == []


# ---------------------------------------------------------------- dropped gradients


@pytest.mark.parametrize(
    "make",
    [
        lambda: jnigt.rennala(optax.sgd(1.0), batch_size=6),
        lambda: jnigt.malenia(optax.sgd(1.0), batch_size=4, num_agents=4),
        lambda: jnigt.synchronized(optax.sgd(1.0), per_agent=2, num_agents=4),
    ],
)
def test_dropped_counts_gradients_for_every_aggregator(make):
    # 2 gradients per agent, agent 1 bad: 6 used, 2 dropped
    opt = make()
    g = jnp.ones((4, 2)).at[1].set(jnp.inf)
    _, s = opt.update(g, opt.init(jnp.zeros(2)), counts=jnp.full(4, 2, jnp.int32))
    assert int(s.dropped) == 2


# ---------------------------------------------------------------- bad input

P = {"w": jnp.zeros((2, 3))}
G = {"w": jnp.ones((3, 2, 3))}
C = jnp.ones(3, jnp.int32)


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: jnigt.nigt(True, 0.5), TypeError, "learning_rate must be a positive number"),
        (lambda: jnigt.nigt("0.1", 0.5), TypeError, "learning_rate"),
        (lambda: jnigt.nigt(jnp.ones(2), 0.5), TypeError, "learning_rate must be a real scalar"),
        (lambda: jnigt.nigt(jnp.array(-0.1), 0.5), ValueError, r"learning_rate must be in \(0.0, inf\]"),
        (lambda: jnigt.nigt(float("nan"), 0.5), ValueError, "learning_rate must be a finite number"),
        (lambda: jnigt.nigt(0.1, np.float32(1.5)), ValueError, "momentum must be in"),
        (lambda: jnigt.nigt(0.1, False), TypeError, "momentum"),
        (lambda: jnigt.nigt(0.1, None), TypeError, "momentum"),
        (lambda: jnigt.rennala(optax.sgd(0.1), True), TypeError, "batch_size must be an int"),
        (lambda: jnigt.rennala(optax.sgd(0.1), 4.0), TypeError, "batch_size must be an int"),
        (lambda: jnigt.rennala(optax.sgd(0.1), "4"), TypeError, "batch_size"),
        (
            lambda: jnigt.rennala(optax.sgd, 4),
            TypeError,
            r"inner must be an optax.GradientTransformation.*call it",
        ),
        (lambda: jnigt.rennala("adam", 4), TypeError, "inner must be an optax.GradientTransformation"),
        (lambda: jnigt.rennala(optax.sgd(0.1), 4, axis_name=()), TypeError, "axis_name"),
        (
            lambda: jnigt.malenia(optax.sgd(0.1), 4, num_agents=np.float64(2)),
            TypeError,
            "num_agents must be an int",
        ),
        (
            lambda: jnigt.synchronized(optax.sgd(0.1), np.int64(0), 2),
            ValueError,
            "per_agent must be an int >= 1",
        ),
        (lambda: jnigt.rennala(optax.sgd(0.1), 2).init({}), ValueError, "params must be a non-empty pytree"),
        (
            lambda: jnigt.rennala(optax.sgd(0.1), 2).update(G, None, P, counts=C),
            TypeError,
            "state must be the AggregatorState",
        ),
        (lambda: jnigt.nigt(0.1, 0.5).update(P, None), TypeError, "state must be the NigtState"),
        (lambda: jnigt.has_updated(None), TypeError, "AggregatorState"),
        (lambda: _upd(jnigt.rennala(optax.sgd(0.1), 2), {}, C), ValueError, "non-empty pytree"),
        (
            lambda: _upd(
                jnigt.rennala(optax.sgd(0.1), 2), {"w": jnp.ones((0, 2, 3))}, jnp.ones(0, jnp.int32)
            ),
            ValueError,
            "at least one agent",
        ),
        (lambda: _upd(jnigt.rennala(optax.sgd(0.1), 2), {"v": G["w"]}, C), ValueError, "tree structure"),
        (
            lambda: _upd(jnigt.rennala(optax.sgd(0.1), 2), {"w": G["w"][0]}, C),
            ValueError,
            "counts must have shape|shape of the params",
        ),
        (
            lambda: _upd(jnigt.rennala(optax.sgd(0.1), 2), {"w": jnp.ones((3, 2, 3), jnp.int32)}, C),
            TypeError,
            "float array",
        ),
        (
            lambda: _upd(jnigt.rennala(optax.sgd(0.1), 2), G, jnp.array([True, True, False])),
            TypeError,
            "counts must be an integer",
        ),
        (lambda: _upd(jnigt.rennala(optax.sgd(0.1), 2), G, "111"), TypeError, "counts"),
        (lambda: _upd(jnigt.rennala(optax.sgd(0.1), 2), G, [1, 2, 3]), None, None),
        (lambda: _upd(jnigt.rennala(optax.sgd(0.1), 2), G, np.array([1, 2, 2**40])), ValueError, "int32"),
        (
            lambda: _upd(jnigt.malenia(optax.sgd(0.1), 2, 3), G, jnp.ones(4, jnp.int32)),
            ValueError,
            r"counts must have shape \(3,\)",
        ),
        (
            lambda: jnigt.nigt(0.1, 0.5).update({"w": jnp.ones(3)}, jnigt.nigt(0.1, 0.5).init(P)),
            ValueError,
            "shape of the params",
        ),
        (
            lambda: jnigt.nigt_eval_params({"v": jnp.ones(3)}, jnigt.nigt(0.1, 0.5).init(P)),
            ValueError,
            "tree structure",
        ),
        (lambda: jnigt.nigt_eval_params(P, None), ValueError, "NigtState"),
        (
            lambda: jnigt.nigt(0.1, 0.5).update(
                jnp.ones(3, jnp.int32), jnigt.nigt(0.1, 0.5).init(jnp.ones(3))
            ),
            TypeError,
            "float array",
        ),
    ],
)
def test_bad_input_gives_a_clear_message(call, err, match):
    if err is None:
        call()
        return
    with pytest.raises(err, match=match):
        call()


def _upd(opt, updates, counts):
    return opt.update(updates, opt.init(P), P, counts=counts)


def test_bad_input_is_caught_under_jit_too():
    opt = jnigt.malenia(optax.sgd(0.1), 2, 3)
    s = opt.init(P)
    with pytest.raises(ValueError, match="counts must have shape"):
        jax.jit(opt.update)(G, s, P, counts=jnp.ones(2, jnp.int32))
    with pytest.raises(TypeError, match="state must be"):
        jax.jit(lambda g: opt.update(g, None, P, counts=C))(G)


def test_malenia_rule_is_jnigt_rules():
    # counts (1, 1) for M = n = 2 closes exactly (float32 rounding must not keep it open)
    opt = jnigt.malenia(optax.sgd(1.0), batch_size=2, num_agents=2)
    _, s = opt.update(jnp.ones((2, 1)), opt.init(jnp.zeros(1)), counts=jnp.array([1, 1]))
    assert bool(s.closed) == bool(rules.malenia_ready_counts(np.array([1, 1]), 2))


# ---------------------------------------------------------------- TrainConfig and memory


def test_train_config_accepts_numpy_numbers_and_stores_python_ones():
    import dataclasses
    import json

    from jnigt.training import TrainConfig

    c = TrainConfig(
        num_agents=np.int64(4),
        batch_size=np.int32(8),
        learning_rate=np.float32(0.25),
        momentum=np.float64(0.5),
        hidden_sizes=[np.int64(8)],
        malenia_drop_after=np.int64(3),
    )
    assert type(c.num_agents) is int and type(c.learning_rate) is float and c.hidden_sizes == (8,)
    json.dumps(dataclasses.asdict(c))  # the run's config.json
    hash(c)
    assert c.malenia_patience == 20 and c.malenia_drop_after == 3


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(num_agents=True), TypeError, "num_agents: must be an int >= 1"),
        (dict(num_agents=4.0), TypeError, "num_agents: must be an int"),
        (dict(batch_size=np.int64(0)), ValueError, "batch_size: must be an int >= 1"),
        (dict(learning_rate="0.1"), TypeError, "learning_rate: must be a number"),
        (dict(learning_rate=float("inf")), ValueError, "learning_rate: must be a finite number"),
        (dict(discount=1.5), ValueError, "discount: must be in"),
        (dict(hidden_sizes=64), TypeError, "hidden_sizes"),
        (dict(malenia_patience=0), ValueError, "malenia_patience: must be an int >= 1"),
        (dict(malenia_drop_after=1.5), TypeError, "malenia_drop_after"),
        (dict(policy="cnn"), ValueError, "policy: must be one of mlp, linear"),
    ],
)
def test_train_config_bad_fields(kwargs, err, match):
    from jnigt.training import TrainConfig

    with pytest.raises(err, match=match):
        TrainConfig(**kwargs)


def test_memory_formula_by_hand():
    from jnigt.training import memory

    # per slot: H(obs + 2 act + 4) + H(2 sum(hidden) + 2 act) + 4 obs + P = 10*9 + 10*34 + 12 + 100 = 542
    assert memory.slot_floats(10, 3, 1, 100, (8, 8)) == 542
    est = memory.estimate_round_bytes(5, 10, 3, 1, 100, hidden_sizes=(8, 8), local_agents=2, num_devices=3)
    assert est == 2 * 3 * 4 * (5 * 542 + 6 * 100)


def test_memory_estimate_bounds_what_xla_allocates():
    import jnigt_envs
    from jnigt.gradients import gpomdp
    from jnigt.training import TrainConfig, memory
    from jnigt.training.build import make_policy

    slots, horizon, hidden = 64, 32, (32, 32)
    cfg = TrainConfig(env="fast", backend=None, hidden_sizes=hidden, horizon=horizon)
    env = jnigt_envs.make_env("fast")
    policy = make_policy(cfg, env)
    params = policy.init(jax.random.key(0))
    f = jax.jit(
        lambda p, keys: jax.vmap(lambda k: gpomdp.trajectory_gradient(policy, env, p, k, 0, horizon, 0.99))(
            keys
        )
    )
    m = f.lower(params, jax.random.split(jax.random.key(1), slots)).compile().memory_analysis()
    measured = m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
    num_params = sum(x.size for x in jax.tree.leaves(params))
    est = memory.estimate_round_bytes(
        slots, horizon, env.observation_size, env.action_size, num_params, hidden_sizes=hidden
    )
    assert measured <= est <= 4 * measured, (measured, est)


def test_memory_check_refuses_huge_batches():
    from jnigt.training import TrainConfig, memory

    big = TrainConfig(batch_size=3 * 10**9, horizon=64)
    with pytest.raises(ValueError, match=r"batch_size=3000000000.*int32 indexing"):
        memory.check_round_memory(big, obs_size=4, action_size=1, num_params=4500)
    with pytest.raises(ValueError, match=r"batch_size=1000000000.*TiB but only"):
        memory.check_round_memory(TrainConfig(batch_size=10**9), obs_size=4, action_size=1, num_params=4500)
    huge = TrainConfig(batch_size=2 * 10**7, horizon=64)
    with pytest.raises(
        ValueError, match=r"batch_size=20000000, num_agents=10, horizon=64.*TiB but only 23.0 GiB"
    ):
        memory.check_round_memory(huge, obs_size=4, action_size=1, num_params=4500, limit=23 * 2**30)
    small = TrainConfig(batch_size=20, horizon=64)
    est = memory.check_round_memory(small, obs_size=4, action_size=1, num_params=4500, limit=2**30)
    assert 0 < est < 2**30
    memory.check_round_memory(small, obs_size=4, action_size=1, num_params=4500)  # default: available RAM
    with pytest.raises(ValueError, match="lower batch_size"):
        memory.check_memory(10, limit=9)


# ---------------------------------------------------------------- run.py: out_dir, checkpoints, metrics

RUN = dict(
    env="fast",
    backend=None,
    hidden_sizes=(8,),
    horizon=8,
    batch_size=8,
    num_agents=4,
    rounds=6,
    eval_every=2,
    eval_episodes=2,
)


def _train(tmp, **kw):
    from jnigt.training import TrainConfig, train

    return train(TrainConfig(**RUN), str(tmp), num_devices=1, progress=False, tensorboard=False, **kw)


def test_out_dir_that_is_a_file_or_inside_one_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match=r"out_dir .*file is a file, not a folder"):
        _train(f)
    with pytest.raises(ValueError, match=r"out_dir .*file/sub cannot be created or written"):
        _train(f / "sub")


def test_corrupt_newest_checkpoint_falls_back_to_the_older_one(tmp_path):
    import json

    _, full, rows_full = _train(tmp_path / "a")
    _train(tmp_path / "b", stop_after_chunks=2)  # checkpoints at rounds 2 and 4
    (tmp_path / "b" / "checkpoints" / "4" / "default" / "_METADATA").write_bytes(b"\xff\xfe not json")
    with pytest.warns(
        UserWarning, match=r"checkpoints/4 is unreadable .*resumed from the older checkpoint of round 2"
    ):
        _, resumed, rows = _train(tmp_path / "b")
    chex.assert_trees_all_equal(resumed.params, full.params)
    assert rows == rows_full
    assert [json.loads(x) for x in open(tmp_path / "b" / "metrics.jsonl")] == rows_full
    assert (tmp_path / "b" / "checkpoints_unreadable" / "4").is_dir()


def test_no_readable_checkpoint_says_what_to_do(tmp_path):
    _train(tmp_path, stop_after_chunks=1)
    (tmp_path / "checkpoints" / "2" / "default" / "_METADATA").write_bytes(b"\xff")
    with pytest.raises(ValueError, match=r"no checkpoint in .*checkpoints can be read .*--no-resume"):
        _train(tmp_path)
    _, st, rows = _train(tmp_path, resume=False)  # starting over works
    assert int(st.round) == 6 and len(rows) == 7


def test_starting_over_deletes_the_old_checkpoints(tmp_path):
    """orbax skips a save at a step that exists: without the deletion, a later resume would restore the old
    run's round-6 checkpoint instead of the new run's round 2 (jnigt/training/run_folder.py)."""
    _train(tmp_path)  # checkpoints at rounds 4 and 6 (max_to_keep=2)
    _, st, _ = _train(tmp_path, resume=False, stop_after_chunks=1)
    assert int(st.round) == 2 and sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]


def test_metrics_line_cut_after_the_checkpoint_does_not_block_resuming(tmp_path):
    _, full, rows_full = _train(tmp_path / "a")
    _train(tmp_path / "b", stop_after_chunks=1)
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write('{"round": 3, "time": 1.5, "env_steps": 12, "grads_u')  # cut by a crash
    _, resumed, rows = _train(tmp_path / "b")
    assert rows == rows_full
    chex.assert_trees_all_equal(resumed.params, full.params)


def test_corrupt_metrics_row_before_the_checkpoint_is_an_error(tmp_path):
    _train(tmp_path, stop_after_chunks=2)
    lines = open(tmp_path / "metrics.jsonl").read().splitlines()
    lines[1] = lines[1][:20]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match=r"metrics.jsonl, line 2: a corrupt metrics row before the checkpoint"
    ):
        _train(tmp_path)


def test_starved_agent_stops_the_run_with_a_clear_error():
    import types

    from jnigt.training import TrainConfig
    from jnigt.training.run import _check_agents

    def state_after(opt, calls):
        s = opt.init(jnp.zeros(2))
        g = jnp.ones((3, 2)).at[2].set(jnp.nan)
        for _ in range(calls):
            _, s = opt.update(g, s, counts=jnp.ones(3, jnp.int32))
        return types.SimpleNamespace(
            opt_state=jax.tree.map(lambda x: x[None], s)
        )  # a device axis, as the loop keeps

    cfg = TrainConfig(method="malenia", num_agents=3, malenia_patience=4)
    _check_agents(cfg, state_after(jnigt.malenia(optax.sgd(1.0), 3, 3), 3), set())
    with pytest.raises(ValueError, match=r"agent\(s\) \[2\] .*malenia_patience=4.*malenia_drop_after=k"):
        _check_agents(cfg, state_after(jnigt.malenia(optax.sgd(1.0), 3, 3), 4), set())
    dropping = TrainConfig(method="malenia", num_agents=3, malenia_drop_after=2)
    with pytest.warns(UserWarning, match="agent 2 sent only non-finite gradients .* was dropped"):
        _check_agents(dropping, state_after(jnigt.malenia(optax.sgd(1.0), 3, 3, drop_after=2), 5), set())
