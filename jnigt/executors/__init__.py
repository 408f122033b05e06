"""Executors that run a :class:`jnigt.training.TrainConfig` on real, concurrently running agents.

``jnigt.executors.ray`` (needs the optional dependency ``ray``, ``pip install jnigt[ray]``):
each agent is a Ray actor computing GPOMDP gradients at its own real speed; a learner applies
the same Optax aggregators to gradients as they arrive. Import it explicitly::

    from jnigt.executors.ray import train_ray
"""
