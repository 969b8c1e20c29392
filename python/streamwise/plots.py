"""Plots for people comparing runs (matplotlib, imported when used)."""
from __future__ import annotations

from typing import Any, Iterable

from . import track

__all__ = ["compare_runs"]


def compare_runs(runs: Iterable[Any], metric: str, x: str = "step",
                 ax: Any = None, store: Any = None) -> Any:
    """One line per run of metric against x ("step", "event_time" or
    "wall_time"); runs are Run objects or run ids (prefixes work).
    Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt
    if x not in ("step", "event_time", "wall_time"):
        raise ValueError(f"x must be step, event_time or wall_time, got "
                         f"{x!r}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4.5))
    else:
        fig = ax.figure
    for r in runs:
        if not isinstance(r, track.Run):
            r = track.open_run(r, store=store)
        h = r.metric_history(metric)
        info = track.get_run(r.id, store=r.store)
        ax.plot(h[x], h["value"], label=f"{info['name']} ({r.id[:8]})")
    ax.set_xlabel({"step": "step (events consumed)", "event_time":
                   "event time", "wall_time": "wall time"}[x])
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    if x != "step":
        fig.autofmt_xdate()
    return fig
