"""Benchmark: peak memory and time of a ``tail_suspension`` arm against the number of mice.

Protocol (issue 12; written down here so the numbers can be reproduced):

- Workload: one arm of ``n`` mice (CORT for 10 days, ketamine 10 mg/kg ip), the
  ``tail_suspension`` assay at 3 h with its default options (60 imaged cells at 30 Hz,
  10 simulated spine branches), the registry's parameters. ``--duration-s`` shortens the
  test (``behavior.tst.duration_s``, 360 s by default) to keep the run short on a small
  machine; it changes the work per mouse, not what is held in memory per chunk.
- Each ``n`` (default 1,000, 5,000 and 10,000) runs in a fresh process (``spawn``), so
  its peak resident set size (``ru_maxrss``) is its own; the wall time includes the
  numba cache load (compile once beforehand with a small run, done here).
- Baseline named by the issue: the first ``n``. Printed per ``n``: wall time, time per
  mouse, peak RSS, and RSS relative to the baseline. Targets: peak RSS within 10% of
  each other across n, and under 2 GB. The last line is
  ``rss ratio max/min: <ratio>``.

Figures (2026-12-05, twelfth session, 2 cores, ``--duration-s 60``): n = 5,000 85.1 s
(17.0 ms a mouse), peak RSS 812 MB; n = 10,000 171.1 s (17.1 ms a mouse), 814 MB; ratio
to n = 1,000 at most 1.061 (targets: within 10%, under 2 GB; both met); 5 min 6 s in all.

2026-12-05, seventeenth session, after the spine engine came to read each step's mean
drive (three signalling output times a step instead of one), on a machine slower than
before for everything: n = 1,000 23.0 s (23.0 ms a mouse), 768 MB; n = 5,000 114.1 s
(22.8 ms), 814 MB; n = 10,000 231.7 s (23.2 ms), 816 MB; ratio at most 1.063 (both
targets met). The code before the change, run alternately minutes later with
``--ns 1000,2000``: 22.5 and 24.5 ms a mouse, 767 and 790 MB; after: 27.4 and 23.8 ms,
768 and 793 MB, so the change costs nothing measurable against the machine's noise.

Run: ``.venv/bin/python benchmarks/bench_memory.py`` (about 15 min on 2 cores with the
full 6-min test; ``--duration-s 60`` takes about a sixth of that).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

SCENARIO = """
name: bench_memory
species: mouse
seed: 1
arms:
  - name: cort_ketamine
    n: {n}
    protocol:
      - {{at: -10d, stress: cort, duration: 10d}}
      - {{at: 0h, drug: ketamine, dose: 10 mg/kg, route: ip}}
    assays:
      - {{assay: tail_suspension, at: [3h]}}
"""


def _child(n: int, duration_s: float, queue) -> None:
    import ketasim
    from ketasim.experiment.runner import simulate
    from ketasim.params import load_registry
    from ketasim.scenario import load_scenario_text

    ketasim.configure() if hasattr(ketasim, "configure") else None
    registry = load_registry().with_values({"behavior.tst.duration_s": duration_s})
    sc = load_scenario_text(SCENARIO.format(n=n))
    t0 = time.perf_counter()
    res = simulate(sc, registry=registry)
    wall = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    queue.put((n, wall, rss_mb, len(res.readouts)))


def measure(n: int, duration_s: float) -> tuple[int, float, float, int]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(n, duration_s, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ns", default="1000,5000,10000", help="numbers of mice")
    ap.add_argument("--duration-s", type=float, default=360.0,
                    help="tail suspension test length (s)")
    args = ap.parse_args()
    ns = [int(x) for x in args.ns.split(",")]
    measure(2, args.duration_s)  # compile or load the numba cache once
    print(f"tail_suspension arm, test of {args.duration_s:g} s; one process per n")
    rows = []
    for n in ns:
        n, wall, rss, nrows = measure(n, args.duration_s)
        rows.append((n, wall, rss))
        base = rows[0][2]
        print(f"n={n:>7,d}  wall {wall:8.1f} s  {1000 * wall / n:7.2f} ms/mouse  "
              f"peak RSS {rss:8.1f} MB  ratio to n={rows[0][0]:,d}: {rss / base:5.3f}  "
              f"({nrows:,d} readout rows)")
    rss = [r[2] for r in rows]
    print(f"peak RSS under 2 GB: {max(rss) < 2048}; within 10%: "
          f"{max(rss) / min(rss) <= 1.10}")
    print(f"rss ratio max/min: {max(rss) / min(rss):.3f}")


if __name__ == "__main__":
    main()
