"""Flax: a ``TrainState`` whose ``apply_gradients`` passes per-agent ``counts`` to a jnigt aggregator.

``flax.training.train_state.TrainState.apply_gradients(grads=...)`` calls ``tx.update(grads,
opt_state, params)`` and has no way to pass the ``counts`` keyword that :func:`jnigt.rennala`,
:func:`jnigt.malenia` and :func:`jnigt.synchronized` need. :class:`AggregatorTrainState` adds it::

    state = AggregatorTrainState.create(apply_fn=model.apply, params=params,
                                        tx=jnigt.rennala(jnigt.nigt(0.1, 0.5), batch_size=8))
    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))(state.params, agent_batches)  # [n, ...] sums
    state = state.apply_gradients(grads=grads, counts=counts)                          # counts: int [n]

``step`` counts the inner optimizer's steps (closed rounds), not calls. With NIGT, ``state.params``
is the evaluation point theta~; :meth:`AggregatorTrainState.eval_params` gives theta_t. A ``tx`` with the
aggregator inside ``optax.apply_if_finite`` (or another wrapper that falls back on the incoming updates)
is refused by ``create`` in one line (:func:`jnigt.transforms.check_not_wrapped`).
"""

from __future__ import annotations

import jax.numpy as jnp
import optax
from flax.training import train_state

from jnigt.transforms import check_not_wrapped, find_aggregator_state, nigt_eval_params
from jnigt.transforms.nigt import find_nigt_state


class AggregatorTrainState(train_state.TrainState):
    """:class:`flax.training.train_state.TrainState` for a ``tx`` built from a jnigt aggregator."""

    @classmethod
    def create(cls, *, apply_fn, params, tx, **kwargs):
        """flax's ``TrainState.create``, refusing a ``tx`` that wraps the aggregator in a fallback wrapper."""
        state = super().create(apply_fn=apply_fn, params=params, tx=tx, **kwargs)
        check_not_wrapped(state.opt_state)
        return state

    def apply_gradients(self, *, grads, counts=None, **kwargs):
        """One aggregator call: ``grads`` leaves carry a leading agent axis (per-agent gradient sums),
        ``counts`` (int [n]) says how many gradients each sum holds. ``step`` grows when a round closes.

        Other keyword arguments are ``.replace()``-ed, as in flax.
        """
        if counts is None:
            raise TypeError(
                "AggregatorTrainState.apply_gradients needs counts=: an int array, one entry per agent "
                "(use flax's TrainState for a plain optax optimizer)"
            )
        updates, new_opt_state = self.tx.update(grads, self.opt_state, self.params, counts=counts)
        aggregator = find_aggregator_state(new_opt_state)
        stepped = aggregator.closed.astype(jnp.int32) if aggregator is not None else 1
        return self.replace(
            step=self.step + stepped,
            params=optax.apply_updates(self.params, updates),
            opt_state=new_opt_state,
            **kwargs,
        )

    def eval_params(self):
        """theta_t, the point to evaluate and deploy (``params`` itself without NIGT)."""
        if find_nigt_state(self.opt_state) is None:
            return self.params
        return nigt_eval_params(self.params, self.opt_state)
