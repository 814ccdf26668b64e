"""Would a lock-step kernel over patient lanes make the signalling right-hand side
cheaper? (research script, not part of ketasim; 2026-12-08, fortieth session)

The question (benchmarks/bench_trial.py, "Where the signalling's time goes"): the
trial's ketamine patients take about 800 solver steps each, almost all of them in the
smooth tail after each dose, and bench_trial's 50x needs each step about twice as cheap.
The arm's patients share every event time, so the natural next step was a kernel that
advances several patients in lock-step, with their states side by side so that the
compiler can use vector instructions (numba here has no SVML, so the few non-integer
powers stay scalar). This script measures the first half of that idea, the right-hand
side, before anything is built on it.

It takes the generated scalar ``rhs`` (``ketasim.signaling._generated``) and rewrites its
body, statement by statement, into a loop over ``L`` lanes: every state, parameter,
local and derivative of lane ``l`` lives at ``offset + index * L + l`` in one flat work
array per group of lanes (one array, so that the compiler can prove that the rows do
not overlap: with four separate arrays, or one 2-D array with run-time strides, numba's
LLVM packed almost nothing), and each statement becomes ``for l in range(L): ...`` over
that array. It then times the scalar ``rhs`` over ``N_PATIENTS`` patients (64: their
states and parameters stay in the level-2 cache, as a solver's working set does; each
its own state vector) against the lane version over the same patients in groups of
``L``, the best of seven alternated passes of ``SWEEPS`` sweeps each, and counts packed
and scalar multiplications in the lane version's machine code. The two agree bit for
bit.

The script switches on numba's SLP vectoriser (``NUMBA_SLP_VECTORIZE=1`` unless it is
set already; numba's default is 0): without it the fully unrolled lane loops stay scalar even in a two-statement toy (checked: 16 scalar
multiplications, none packed; with it, 2 packed 512-bit ones).

Measured 2026-12-08 (AMD Zen 5 with AVX-512, numba 0.68.1, one thread; ns per patient
and right-hand side; this virtual machine's speed drifted by up to 2x between runs
minutes apart, so only the ratio within one run means much):

- 64 patients, lanes of 8: scalar 318-370, lanes 172-203 (1.6-1.85x); lanes of 4: 339
  against 241 (1.4x); of 16: 339 against 173 (2.0x);
- 16 patients (level-1 cache), lanes of 8: 171 against 169 (1.0x) in one run, 350
  against 222 (1.6x) in the next; 512 patients: 364-389 against 245-260 (1.5x);
- 4,096 patients (27 MB of parameters, from memory; first try): scalar 237-630, lanes of
  8 312-388, so from 0.6x to 1.6x;
- the lane code's packed and scalar multiplications: 255 and 575 at 4 lanes, 299 and
  1,055 at 8, 568 and 203 at 16 (the non-integer powers and the target-node loops stay
  scalar); one patient's right-hand side alone, its data in the level-1 cache, takes
  283-306 ns at any alignment of its arrays (checked: no 4K-aliasing effect).

So lanes make the right-hand side up to about 1.8x cheaper where the scalar code runs
slowly and no cheaper where it runs fast. A solver step also needs the Jacobian (about
twice a right-hand side) and the linear solves in lanes, and lanes in lock-step take the
step size of their least accurate lane, so the trial's ketamine patients would take
more steps than they do alone. With a 1.0-1.8x gain on part of the step that is not the
2x bench_trial's 50x needs, so the lane kernel is not built.

Run: ``.venv/bin/python docs/research/lane_rhs_probe.py [L]`` (L = 8 by default, a
divisor of 64; about a minute, most of it compiling).
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_SLP_VECTORIZE", "1")  # before numba reads its configuration

import numba
import numpy as np

from ketasim.params import load_registry
from ketasim.signaling import _generated as g
from ketasim.signaling import spec
from ketasim.signaling.solver import full_parameter_vector

N_PATIENTS = 64
SWEEPS = 1000
PASSES = 7


def lane_source(lanes: int) -> tuple[str, list[str]]:
    """The lane version of the generated ``rhs``, and its local names in order."""
    lines = Path(g.__file__).read_text().splitlines()
    i0 = next(i for i, s in enumerate(lines) if s.startswith("def rhs("))
    i1 = next(i for i, s in enumerate(lines) if i > i0 and s.startswith("@numba"))
    body = [s for s in lines[i0 + 1:i1]
            if s.strip() and "N_PTOTAL" not in s and "raise ValueError" not in s]
    names: list[str] = []
    for s in body:
        m = re.match(r"\s+([A-Za-z_]\w*) = ", s)
        if m and m.group(1) not in names:
            names.append(m.group(1))
    index = {n: k for k, n in enumerate(names)}

    def lane(expr: str) -> str:
        expr = re.sub(r"\bdy\[([^\[\]]+)\]", r"W[ODY + (\1) * LL + l]", expr)
        expr = re.sub(r"\by\[([^\[\]]+)\]", r"W[OY + (\1) * LL + l]", expr)
        expr = re.sub(r"\bp\[([^\[\]]+)\]", r"W[OP + (\1) * LL + l]", expr)
        return re.sub(r"\b([A-Za-z_]\w*)\b(?!\s*\()",
                      lambda m: (f"W[OS + {index[m.group(1)] * lanes} + l]"
                                 if m.group(1) in index else m.group(1)), expr)

    out = ["def rhs_lanes(t, W):"]
    for s in body:
        indent = " " * (len(s) - len(s.lstrip()))
        if s.strip().startswith("for "):  # the generated target-node loops stay loops
            out.append(indent + s.strip())
            continue
        out.append(f"{indent}for l in range({lanes}):")
        out.append(f"{indent}    {lane(s.strip())}")
    return "\n".join(out), names


def main(lanes: int) -> None:
    if lanes < 1 or N_PATIENTS % lanes:
        raise SystemExit(f"lanes: expected a divisor of {N_PATIENTS}, got {lanes}")
    n_y, n_p = g.N_STATES, g.N_PTOTAL
    code, names = lane_source(lanes)
    offsets = {"OY": 0, "OP": n_y * lanes, "OS": (n_y + n_p) * lanes,
               "ODY": (n_y + n_p + len(names)) * lanes}
    ns = dict(LL=lanes, math=math, _pw=g._pw, _pos=g._pos, _hillk=g._hillk, **offsets)
    exec(code, ns)  # noqa: S102 - the generated module's own text, rewritten above
    rhs_lanes = numba.njit(error_model="numpy")(ns["rhs_lanes"])

    reg = load_registry()
    pvec = np.array([reg.value(p.registry.format(species="human")) if p.registry
                     else p.default for p in spec.PARAMS])
    y0 = np.array([s.initial for s in spec.STATES])
    rng = np.random.default_rng(1)
    ys = y0[None, :] * (1 + 0.01 * rng.standard_normal((N_PATIENTS, n_y)))
    ps = np.tile(full_parameter_vector(pvec), (N_PATIENTS, 1))
    groups = N_PATIENTS // lanes
    work = np.zeros((groups, offsets["ODY"] + n_y * lanes))
    work[:, :n_y * lanes] = ys.reshape(groups, lanes, n_y).transpose(0, 2, 1).reshape(groups, -1)
    work[:, n_y * lanes:(n_y + n_p) * lanes] = (
        ps.reshape(groups, lanes, n_p).transpose(0, 2, 1).reshape(groups, -1))
    dy = np.zeros(n_y)
    ody = offsets["ODY"]

    @numba.njit
    def scalar(ys, ps, dy, sweeps):
        s = 0.0
        for _ in range(sweeps):
            for i in range(ys.shape[0]):
                g.rhs(0.0, ys[i], ps[i], dy)
                s += dy[40]
        return s

    @numba.njit
    def lane(work, sweeps):
        s = 0.0
        for _ in range(sweeps):
            for b in range(work.shape[0]):
                rhs_lanes(0.0, work[b])
                s += work[b, ody]
        return s

    scalar(ys, ps, dy, 1)
    lane(work, 1)
    cases = (("scalar rhs", scalar, (ys, ps, dy, SWEEPS)),
             (f"{lanes} lanes", lane, (work, SWEEPS)))
    best = [math.inf, math.inf]
    for _ in range(PASSES):  # alternated, so that a slow spell of the machine hits both
        for k, (_, f, args) in enumerate(cases):
            t0 = time.perf_counter()
            f(*args)
            best[k] = min(best[k], time.perf_counter() - t0)
    for (name, _, _), b in zip(cases, best):
        print(f"{name:>12}: {b / (SWEEPS * N_PATIENTS) * 1e9:6.1f} ns per patient")
    w0 = work[0].copy()
    rhs_lanes(0.0, w0)
    g.rhs(0.0, ys[1].copy(), ps[1].copy(), dy)
    same = np.array_equal(dy, w0[ody:ody + n_y * lanes].reshape(n_y, lanes)[:, 1])
    asm = rhs_lanes.inspect_asm(rhs_lanes.signatures[0])
    print(f"bitwise equal: {same}; packed multiplications {asm.count('vmulpd')}, "
          f"scalar {asm.count('vmulsd')}; SLP vectoriser on: {numba.config.SLP_VECTORIZE}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
