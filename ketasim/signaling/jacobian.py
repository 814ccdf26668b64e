"""Analytic Jacobian of the spec, and its block-triangular structure, for code generation.

The cascade is feed-forward: PK feeds receptor occupancy, which feeds the signalling
states, and no state feeds back upstream. Ordered by strongly connected components
(a drug slot's central compartment with its peripheral and deep compartments forms a
3-state star, everything else is a single state), the Jacobian is block lower-triangular, so the linear systems of the
Rosenbrock solver are solved by block forward substitution in O(nonzeros) instead of an
LU factorisation.

Derivatives are taken by sympy on each expression and chained through the assignments
(forward mode), so generated code stays as small as the model itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from ketasim.signaling import spec


class Pos(sp.Function):
    """max(x, 0)."""

    def fdiff(self, argindex=1):
        return DPos(self.args[0])


class DPos(sp.Function):
    """Derivative of max(x, 0): 1 for x > 0, else 0."""

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class Pw(sp.Function):
    """x ** a with the derivative written as a * x ** (a - 1) (finite at x = 0 for a >= 1)."""

    def fdiff(self, argindex=1):
        x, a = self.args
        if argindex == 1:
            return a * Pw(x, a - 1)
        return Pw(x, a) * sp.log(x)


class Hillk(sp.Function):
    """x**n / (x**n + Kn)."""

    def fdiff(self, argindex=1):
        x, kn, n = self.args
        if argindex != 1:
            raise NotImplementedError("derivatives with respect to Kn or n are not needed")
        return n * Pw(x, n - 1) * kn / (Pw(x, n) + kn) ** 2


def _sym(expr: str, names: dict[str, sp.Symbol]) -> sp.Expr:
    return sp.sympify(expr, locals={**names, "pos": Pos, "pw": Pw, "hillk": Hillk,
                                    "exp": sp.exp, "log": sp.log})


def to_python(e: sp.Expr) -> str:
    text = sp.pycode(e, fully_qualified_modules=False, user_functions={
        "Pos": "_pos", "DPos": "_dpos", "Pw": "_pw", "Hillk": "_hillk"})
    # sp.pycode prints math functions bare (exp, log, sqrt); qualify them
    return re.sub(r"(?<![\w.])(exp|log|sqrt)\(", r"math.\1(", text)


_NAME_OR_NUMBER = re.compile(r"-?[\w.]+")


def _chain(e: sp.Expr, dvars: dict[str, dict[int, str]], lines: list[str], tag: str
           ) -> dict[int, list[str]]:
    """Terms of d e / d y_j for every state j, by the chain rule through the symbols of
    ``e`` whose state derivatives are known (``dvars``: symbol -> {j: code}). A partial
    derivative that several states' terms share (a Hill function's slope, say) is
    computed once, into ``_p_<tag>_<symbol>`` appended to ``lines``: the same
    expression evaluated once instead of per state, so the same numbers."""
    acc: dict[int, list[str]] = {}
    for s in sorted(e.free_symbols, key=lambda x: x.name):
        if not dvars.get(s.name):
            continue  # parameter, control, or parameter-only assignment
        partial = to_python(sp.diff(e, s))
        if partial == "0":
            continue
        if len(dvars[s.name]) > 1 and not _NAME_OR_NUMBER.fullmatch(partial):
            var = f"_p_{tag}_{s.name}"
            lines.append(f"    {var} = {partial}")
            partial = var
        for j, dv in dvars[s.name].items():
            acc.setdefault(j, []).append(f"({partial}) * {dv}" if dv != "1.0"
                                         else f"({partial})")
    return acc


@dataclass(frozen=True)
class JacobianCode:
    lines: list[str]  # code computing d/dy of assignments and the Jacobian entries
    entries: list[tuple[int, int]]  # (row, col) of each stored nonzero, in J[k] order
    blocks: list[list[int]]  # strongly connected components, topological order


def build() -> JacobianCode:
    names = {n: sp.Symbol(n) for n in
             (*spec.STATE_NAMES, *spec.PVEC_NAMES, *(a for a, _ in spec.ASSIGNMENTS))}
    state_idx = {n: i for i, n in enumerate(spec.STATE_NAMES)}
    lines: list[str] = []
    # forward-mode derivatives of the assignments w.r.t. states: name -> {j: var}
    dvars: dict[str, dict[int, str]] = {n: {i: "1.0"} for n, i in state_idx.items()}
    for a, text in spec.ASSIGNMENTS:
        acc = _chain(_sym(text, names), dvars, lines, a)
        dvars[a] = {}
        for j, terms in sorted(acc.items()):
            var = f"_d_{a}_{j}"
            lines.append(f"    {var} = {' + '.join(terms)}")
            dvars[a][j] = var
    # Jacobian rows
    entries: list[tuple[int, int]] = []
    for i, (name, text) in enumerate(spec.RATES):
        acc = _chain(_sym(text, names), dvars, lines, f"rate{i}")
        for j, terms in sorted(acc.items()):
            lines.append(f"    J[{len(entries)}] = {' + '.join(terms)}")
            entries.append((i, j))
    # block structure
    n = spec.N_STATES
    rows = [i for i, j in entries]
    cols = [j for i, j in entries]
    g = csr_matrix((np.ones(len(entries)), (cols, rows)), shape=(n, n))  # edge j -> i
    n_comp, labels = connected_components(g, directed=True, connection="strong")
    comps: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        comps.setdefault(int(lab), []).append(i)
    # topological order of the condensation (Kahn)
    deps = {c: set() for c in comps}
    for i, j in entries:
        if labels[i] != labels[j]:
            deps[int(labels[i])].add(int(labels[j]))
    order: list[int] = []
    done: set[int] = set()
    while len(order) < n_comp:
        ready = sorted(c for c in comps if c not in done and deps[c] <= done)
        if not ready:
            raise RuntimeError("cycle between components")
        c = min(ready, key=lambda c: min(comps[c]))
        order.append(c)
        done.add(c)
    blocks = [_star(sorted(comps[c]), set(entries)) for c in order]
    return JacobianCode(lines, entries, blocks)


def _star(block: list[int], entries: set[tuple[int, int]]) -> list[int]:
    """A block of one or two states as it is; a block of three must be a star (a hub
    coupled to two leaves that are not coupled to each other, as a central compartment
    with two peripheral ones), returned hub first."""
    if len(block) <= 2:
        return block
    if len(block) == 3:
        for hub in block:
            leaves = [j for j in block if j != hub]
            if (leaves[0], leaves[1]) not in entries and (leaves[1], leaves[0]) not in entries:
                return [hub, *leaves]
    raise NotImplementedError(f"a block of states {block} is neither 1-2 states nor a star "
                              "of three: it needs a dense block solver")


def solve_lines(jc: JacobianCode) -> tuple[list[str], list[str]]:
    """Code for (inv_gh * I - J) u = b by block forward substitution, in two parts:
    ``prep`` (once per step: reciprocal pivots into D) and ``solve`` (per stage, no
    division)."""
    pos = {e: k for k, e in enumerate(jc.entries)}
    prep: list[str] = []
    out: list[str] = []

    def rhs_terms(i: int, exclude: set[int]) -> str:
        terms = [f"J[{k}] * u[{j}]" for (r, j), k in pos.items() if r == i and j not in exclude]
        return " + ".join([f"b[{i}]", *terms])

    def diag(i: int) -> str:
        k = pos.get((i, i))
        return f"(inv_gh - J[{k}])" if k is not None else "inv_gh"

    def m_entry(i: int, j: int) -> str:  # off-diagonal entry of (inv_gh I - J)
        return f"(-J[{pos[(i, j)]}])" if (i, j) in pos else "0.0"

    for blk in jc.blocks:
        if len(blk) == 1:
            i = blk[0]
            prep.append(f"    D[{i}] = 1.0 / {diag(i)}")
            out.append(f"    u[{i}] = ({rhs_terms(i, {i})}) * D[{i}]")
        elif len(blk) == 3:
            # star: hub i, leaves m and l (leaves eliminated into the hub's pivot)
            i, m, l = blk
            prep.append(f"    D[{m}] = 1.0 / {diag(m)}")
            prep.append(f"    D[{l}] = 1.0 / {diag(l)}")
            prep.append(f"    D[{i}] = 1.0 / ({diag(i)} - {m_entry(i, m)} * {m_entry(m, i)}"
                        f" * D[{m}] - {m_entry(i, l)} * {m_entry(l, i)} * D[{l}])")
            out.append(f"    r0 = {rhs_terms(i, set(blk))}")
            out.append(f"    r1 = {rhs_terms(m, set(blk))}")
            out.append(f"    r2 = {rhs_terms(l, set(blk))}")
            out.append(f"    u[{i}] = (r0 - {m_entry(i, m)} * r1 * D[{m}] - {m_entry(i, l)}"
                       f" * r2 * D[{l}]) * D[{i}]")
            out.append(f"    u[{m}] = (r1 - {m_entry(m, i)} * u[{i}]) * D[{m}]")
            out.append(f"    u[{l}] = (r2 - {m_entry(l, i)} * u[{i}]) * D[{l}]")
        else:
            i, m = blk
            a = diag(i)
            d = diag(m)
            bb = f"(-J[{pos[(i, m)]}])" if (i, m) in pos else "0.0"
            cc = f"(-J[{pos[(m, i)]}])" if (m, i) in pos else "0.0"
            prep.append(f"    D[{i}] = 1.0 / ({a} * {d} - {bb} * {cc})")
            out.append(f"    r0 = {rhs_terms(i, {i, m})}")
            out.append(f"    r1 = {rhs_terms(m, {i, m})}")
            out.append(f"    u[{i}] = (r0 * {d} - {bb} * r1) * D[{i}]")
            out.append(f"    u[{m}] = ({a} * r1 - {cc} * r0) * D[{i}]")
    return prep, out
