"""The training methods, one module each, behind one interface (:class:`Method`).

Each module has ``LABEL`` (its name in figures) and ``build(ctx: Context) -> Method``; the
:class:`~jnigt.training.Trainer` runs any of them the same way. Methods name the aggregation
(docs/algorithms.md#rennala, #malenia, #synchronized, #afedpg); the inner optimizer is separate
(``TrainConfig.optimizer``): rennala+nigt = Rennala NIGT, rennala+adam = a "Rennala PG" ablation.
"""

from __future__ import annotations

from jnigt.training.methods import afedpg, malenia, rennala, synchronized
from jnigt.training.methods._common import METRIC_NAMES, Context, Method

#: name -> method module (``LABEL``, ``build``)
METHODS = {
    "rennala": rennala,
    "malenia": malenia,
    "synchronized": synchronized,
    "afedpg": afedpg,
}


def label(method: str, optimizer: str = "nigt") -> str:
    """The figure label of a run: the method's LABEL with nigt ("Rennala NIGT"), else "method+optimizer"."""
    if optimizer == "nigt" and method in METHODS:
        return METHODS[method].LABEL
    return f"{method}+{optimizer}"


__all__ = ["METHODS", "METRIC_NAMES", "Context", "Method", "label"]
