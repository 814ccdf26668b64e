"""Figures without pyplot: each figure is a ``matplotlib.figure.Figure`` of its own, so
drawing a report sets no global backend and leaves no figure registered (importing
ketasim's report modules changes nothing in a user's matplotlib session)."""

from __future__ import annotations

from matplotlib.figure import Figure


def literal(text) -> str:
    """``text`` as matplotlib draws it literally: every ``$`` escaped, so that a name a
    user gave (a group, arm, subject, compound, target or parameter) is not parsed as
    mathtext (``sal$^$`` would raise; ``$x$`` would be drawn as math). Apply it to each
    user-supplied string that goes into a figure: titles, axis and tick labels, legend
    labels and other texts (matplotlib draws ``\\$`` as ``$`` outside math)."""
    return str(text).replace("$", r"\$")


def subplots(*args, figsize=None, **kwargs):
    """``(figure, axes)`` like ``pyplot.subplots``, on a figure pyplot does not track."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)
