"""Figures without pyplot: each figure is a ``matplotlib.figure.Figure`` of its own, so
drawing a report sets no global backend and leaves no figure registered (importing
ketasim's report modules changes nothing in a user's matplotlib session)."""

from __future__ import annotations

from matplotlib.figure import Figure


def subplots(*args, figsize=None, **kwargs):
    """``(figure, axes)`` like ``pyplot.subplots``, on a figure pyplot does not track."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)
