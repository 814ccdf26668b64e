"""Benchmark: peak memory of ``ketasim run`` on a virtual trial against its number of
patients.

Protocol (issue 14, item 9: a 100,000-patient trial under 2 GB; written down here so the
numbers can be reproduced):

- Workload: the trial of ``benchmarks/bench_trial.py`` (its ``scenario_text``: half
  placebo, half ketamine 0.5 mg/kg iv over 40 min on days 0, 3, 7, 10, 14 and 17, the
  ``major_depression`` stressor from day -60, MADRS on days -1, 7, 14, 21, 28, 35 and
  42; 21 readout rows a patient), run as ``ketasim run`` runs it: ``simulate`` then
  ``write_run`` (readouts.parquet, summary, stats, manifest and the HTML report) into a
  temporary folder.
- Each ``n`` (default 10,000, 50,000 and 100,000 patients) runs in a fresh process
  (``spawn``), so its peak resident set size (``ru_maxrss``) is its own; a 2-patient run
  loads the numba cache first. Baseline: the first ``n``.
- Printed per ``n``: wall time, peak RSS, and the memory per patient beyond the
  baseline (what the readout table and its copies cost; the chunks' own buffers are
  bounded by the runner's chunk size). Target: under 2 GB at 100,000 patients. The last
  line is ``peak RSS at n=<largest>: <MB> MB``.

Figures (2026-12-04, 2 cores, one run each):

- n=10,000: 6.4 s, peak RSS 429 MB; n=50,000: 32.0 s, 590 MB; n=100,000: 61.8 s,
  816 MB (4.4 kB a patient beyond n=10,000; the table is 56 bytes a row, 1.2 kB a
  patient, plus its copies in concatenation, summary and the Parquet conversion).
- The same benchmark on the code before (commit f06a6d1): 509, 901 and 1,301 MB (9.0
  to 10.0 kB a patient). Then every row's readout name and unit was a string object of
  its own (``astype(str)``), ``simulate`` copied the whole table twice at its end (to
  drop the region column it had added to every arm), and ``readouts.parquet`` was
  converted to Arrow in one piece.

- 2026-12-05, twelfth session: n=10,000 7.2 s, 433 MB; n=50,000 31.3 s, 598 MB;
  n=100,000 63.1 s, 805 MB (4.24 kB a patient beyond n=10,000).

Run: ``.venv/bin/python benchmarks/bench_run_memory.py`` (about 3 min on 2 cores).
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

BENCH_TRIAL = Path(__file__).resolve().parent / "bench_trial.py"


def _trial_text(n: int) -> str:
    spec = importlib.util.spec_from_file_location("bench_trial", BENCH_TRIAL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.scenario_text(module.arm_sizes(n), 14)


def _child(n: int, queue) -> None:
    import ketasim

    ketasim.configure()
    from ketasim.experiment.runner import simulate
    from ketasim.params import load_registry
    from ketasim.report.run_folder import write_run
    from ketasim.scenario import load_scenario_text

    text = _trial_text(n)
    registry = load_registry()
    t0 = time.perf_counter()
    result = simulate(load_scenario_text(text, "bench_run_memory"), registry=registry)
    rows = len(result.readouts)
    with tempfile.TemporaryDirectory() as tmp:
        write_run(result, Path(tmp) / "run", registry, scenario_text=text)
    wall = time.perf_counter() - t0
    queue.put((n, wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, rows))


def measure(n: int) -> tuple[int, float, float, int]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(n, queue))
    proc.start()
    out = queue.get()
    proc.join()
    if proc.exitcode:
        raise SystemExit(f"the run of {n} patients failed (exit code {proc.exitcode})")
    return out


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ns", default="10000,50000,100000", help="numbers of patients")
    args = ap.parse_args(argv)
    try:
        ns = [int(x) for x in args.ns.split(",")]
    except ValueError:
        ns = []
    if not ns or min(ns) < 2:
        ap.error(f"--ns: got {args.ns!r}; expected comma-separated numbers of patients, "
                 "each at least 2")
    measure(2)  # load the numba cache once
    print("ketasim run (simulate + write_run) of bench_trial's trial; one process per n")
    rows = []
    for n in ns:
        n, wall, rss, nrows = measure(n)
        rows.append((n, wall, rss))
        n0, _, rss0 = rows[0]
        extra = (f"  {1024 * (rss - rss0) / (n - n0):6.2f} kB/patient beyond n={n0:,d}"
                 if n > n0 else "")
        print(f"n={n:>8,d}  wall {wall:7.1f} s  peak RSS {rss:8.1f} MB{extra}  "
              f"({nrows:,d} readout rows)")
    largest = max(rows)
    print(f"peak RSS under 2 GB at n={largest[0]:,d}: {largest[2] < 2048}")
    print(f"peak RSS at n={largest[0]:,d}: {largest[2]:.0f} MB")
    return largest[2]


if __name__ == "__main__":
    main()
