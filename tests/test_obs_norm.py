"""Observation normalisation (docs/algorithms.md#obs-norm): the statistics, where the policy sees them,
determinism, vmap, checkpoints, bad input; and that a constant reward scale cannot change NIGT."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import Wrapper

from jnigt import cli
from jnigt.gradients import gpomdp, obs_norm
from jnigt.training import TrainConfig, Trainer, train
from jnigt.training.learner import OBS_STATS_STREAM

LQR = dict(
    env="lqr",
    backend=None,
    hidden_sizes=(8,),
    num_agents=4,
    horizon=6,
    discount=0.9,
    batch_size=8,
    rounds=4,
    eval_every=2,
    eval_episodes=3,
    learning_rate=0.1,
    momentum=0.3,
)
INITIAL = dict(LQR, obs_norm="initial", obs_norm_episodes=6)


class _MapObs(Wrapper):
    """The env with its observations mapped by ``f`` (the dynamics read pipeline_state, not obs)."""

    def __init__(self, env, f):
        super().__init__(env)
        self._f = f

    def reset(self, rng):
        s = self.env.reset(rng)
        return s.replace(obs=self._f(s.obs))

    def step(self, state, action):
        s = self.env.step(state, action)
        return s.replace(obs=self._f(s.obs))


class _ScaleReward(Wrapper):
    def __init__(self, env, scale):
        super().__init__(env)
        self._scale = scale

    def step(self, state, action):
        s = self.env.step(state, action)
        return s.replace(reward=s.reward * self._scale)


def test_masked_stats_are_mean_and_floored_std_over_alive_steps_and_normalise_clips():
    rng = np.random.default_rng(0)
    obs = rng.normal(3.0, 2.0, (5, 7, 3)).astype(np.float32)
    obs[..., 2] = 4.0  # a constant coordinate
    alive = rng.random((5, 7)) < 0.6
    obs_dead = np.where(alive[..., None], obs, 1e6)  # dead steps must not count
    stats = obs_norm.masked_stats(jnp.asarray(obs_dead), jnp.asarray(alive))
    kept = obs[alive]
    np.testing.assert_allclose(stats.mean, kept.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.std[:2], kept.std(0)[:2], rtol=1e-5)
    assert float(stats.std[2]) == np.float32(obs_norm.OBS_STD_FLOOR)
    z = obs_norm.normalise(stats, jnp.asarray([[3.0, 3.0, 4.0], [1e4, -1e4, 4.5]], jnp.float32))
    np.testing.assert_allclose(z[0, :2], (3.0 - kept.mean(0)[:2]) / kept.std(0)[:2], rtol=1e-4)
    np.testing.assert_array_equal(z[1], [obs_norm.OBS_CLIP, -obs_norm.OBS_CLIP, obs_norm.OBS_CLIP])
    assert float(z[0, 2]) == 0.0


def test_initial_stats_are_those_of_a_plain_rollout_of_the_initial_policy():
    tr = Trainer(TrainConfig(**INITIAL), num_devices=1)
    stats = tr.init(3).obs_stats
    params = tr.policy.init(jax.random.split(jax.random.key(3))[1])
    keys = jax.random.split(jax.random.fold_in(jax.random.key(3), OBS_STATS_STREAM), 6)
    seen = []
    for e in range(6):  # episode e by agent e mod n, the initial policy seeing raw observations
        obs, _, _, alive = gpomdp.rollout(tr.policy, tr.env, params, keys[e], e % 4, 6)
        seen.append(np.asarray(obs)[np.asarray(alive)])
    seen = np.concatenate(seen)
    np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.std, np.maximum(seen.std(0), obs_norm.OBS_STD_FLOOR), rtol=1e-5)
    assert stats.mean.shape == (tr.env.observation_size,)


def test_same_seed_same_stats_and_vmapped_init_computes_them_per_seed():
    tr = Trainer(TrainConfig(**INITIAL), num_devices=1)
    states = jax.vmap(tr.init)(jnp.array([0, 1, 0]))
    for i, seed in enumerate([0, 1, 0]):
        chex.assert_trees_all_close(
            jax.tree.map(lambda x: x[i], states.obs_stats), tr.init(seed).obs_stats, rtol=1e-5, atol=1e-7
        )
    chex.assert_trees_all_equal(tr.init(0).obs_stats, tr.init(0).obs_stats)
    assert not np.allclose(states.obs_stats.mean[0], states.obs_stats.mean[1])
    # vmapped steps keep working with the statistics in the state
    states, metrics = jax.jit(jax.vmap(tr.step))(states)
    assert metrics["time"].shape == (3,)


def test_off_stores_no_statistics_and_keeps_todays_numbers():
    cfg = TrainConfig(**LQR)
    assert cfg.obs_norm == "off"
    tr = Trainer(cfg, num_devices=1)
    st = tr.init(0)
    assert st.obs_stats is None
    st, _, ev = tr.run_chunk(st)
    # recorded before observation normalisation existed (same config, seed 0)
    np.testing.assert_allclose(float(ev), -12.551017761230469, rtol=1e-4)


@pytest.mark.parametrize(
    "method, charge",
    [("rennala", "horizon"), ("afedpg", "horizon"), ("rennala", "taken"), ("afedpg", "taken")],
)
def test_every_method_and_the_evaluation_see_normalised_observations(method, charge):
    """A run with obs_norm="initial" equals a run without it on the env whose observations are
    normalised by the same statistics: the gradients, the server steps and the evaluations; also on the
    paths of charge="taken" (candidates sampled before the round closes, AFedPG sampling at restart)."""
    cfg = TrainConfig(**{**INITIAL, "method": method, "rounds": 2, "charge": charge})
    tr = Trainer(cfg, num_devices=1)
    st = tr.init(0)
    stats = st.obs_stats
    ref_cfg = TrainConfig(**{**LQR, "method": method, "rounds": 2, "charge": charge})
    ref = Trainer(ref_cfg, num_devices=1, env=_MapObs(tr.env, lambda o: obs_norm.normalise(stats, o)))
    ref_st = ref.init(0)
    chex.assert_trees_all_equal(st.params, ref_st.params)
    # the normalisation is not the identity here, so the comparison would catch raw observations
    assert float(jnp.max(jnp.abs(stats.std - 1.0))) > 0.1
    st, m, ev = tr.run_chunk(st)
    ref_st, ref_m, ref_ev = ref.run_chunk(ref_st)
    chex.assert_trees_all_close(st.params, ref_st.params, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(m["grad_norm"], ref_m["grad_norm"], rtol=1e-4)
    np.testing.assert_allclose(float(ev), float(ref_ev), rtol=1e-4, atol=1e-4)


def test_resume_restores_the_statistics_and_continues_bit_identically(tmp_path):
    import orbax.checkpoint as ocp

    cfg = TrainConfig(**{**INITIAL, "rounds": 6})
    _, full, rows_full = train(cfg, str(tmp_path / "a"), num_devices=1, progress=False)
    _, part, _ = train(cfg, str(tmp_path / "b"), num_devices=1, progress=False, stop_after_chunks=1)
    # the statistics are in the checkpoint itself (restored without a template)
    saved = ocp.StandardCheckpointer().restore(tmp_path / "b" / "checkpoints" / "2" / "default")
    saved_stats = saved["obs_stats"] if isinstance(saved, dict) else saved[-1]
    np.testing.assert_array_equal(np.asarray(saved_stats["mean"]), np.asarray(part.obs_stats.mean))
    np.testing.assert_array_equal(np.asarray(saved_stats["std"]), np.asarray(part.obs_stats.std))
    _, resumed, rows_resumed = train(cfg, str(tmp_path / "b"), num_devices=1, progress=False)
    chex.assert_trees_all_equal(full.obs_stats, resumed.obs_stats)
    chex.assert_trees_all_equal(full.params, resumed.params)
    assert rows_full == rows_resumed


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(obs_norm="running"),
            ValueError,
            "obs_norm: must be one of off, initial",
        ),
        (dict(obs_norm=None), ValueError, "obs_norm"),
        (dict(obs_norm_episodes=0), ValueError, "obs_norm_episodes: must be an int >= 1"),
        (dict(obs_norm_episodes=True), TypeError, "obs_norm_episodes"),
        (dict(obs_norm_episodes=2.0), TypeError, "obs_norm_episodes"),
    ],
)
def test_bad_obs_norm_settings_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**{**LQR, **kwargs})
    assert TrainConfig(**{**LQR, "obs_norm_episodes": np.int64(5)}).obs_norm_episodes == 5


def test_cli_exposes_obs_norm():
    _, configs = cli.parse_train(["--obs-norm", "initial", "--obs-norm-episodes", "8", "--method", "rennala"])
    assert (configs[0].obs_norm, configs[0].obs_norm_episodes) == ("initial", 8)


@pytest.mark.parametrize("method", ["rennala", "afedpg"])
def test_a_constant_reward_scale_cannot_change_nigt(method):
    """NIGT (and AFedPG's NIGT server) steps along d_t / ||d_t||: scaling every reward by c > 0 scales
    every gradient and d_t by c, so the steps are the same (docs/algorithms.md#obs-norm)."""
    cfg = TrainConfig(**{**LQR, "method": method})
    tr = Trainer(cfg, num_devices=1)
    scaled = Trainer(cfg, num_devices=1, env=_ScaleReward(tr.env, 1000.0))
    st, m, _ = tr.run_chunk(tr.init(0))
    sst, sm, _ = scaled.run_chunk(scaled.init(0))
    chex.assert_trees_all_close(st.params, sst.params, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(sm["grad_norm"], 1000.0 * m["grad_norm"], rtol=1e-4)
