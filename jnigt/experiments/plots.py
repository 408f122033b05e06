"""Figures of equal-time comparisons: median return against simulated time with a 20-80% band."""

from __future__ import annotations

import os

import numpy as np

from jnigt.experiments import stats


def plot_curves(
    times, curves: dict[str, np.ndarray], out: str, title: str = "", threshold: float | None = None
) -> str:
    """One PNG: for each label, the median over runs of ``curves[label]`` ([K, G] on ``times``) and its
    20%-80% band; a dotted line at ``threshold``. Returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray(times, float)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, y in curves.items():
        med, lo, hi = stats.median_band(y)
        ax.plot(t, med, marker=".", label=f"{label} ({np.shape(y)[0]} seeds)")
        ax.fill_between(t, lo, hi, alpha=0.25)
    if threshold is not None:
        ax.axhline(threshold, color="gray", linestyle=":", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("evaluation return of theta_t")
    if title:
        import textwrap

        ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
