"""Benchmark: peak memory and time of ``summarize_suite2p`` on a large suite2p folder,
against loading the arrays whole.

Protocol (issue 16; written down here so the numbers can be reproduced):

- Workload: a suite2p-style plane folder (``suite2p/plane0/F.npy``, ``Fneu.npy``,
  ``iscell.npy``, ``ops.npy``) in a temporary directory, ``--rois`` ROIs (default 2,000)
  and as many frames as make ``F.npy`` plus ``Fneu.npy`` ``--size-gb`` GB (1e9 bytes,
  default 1.0: 62,500 frames, 35 min at 30 Hz), float32, C order. Per ROI: dF/F truth =
  Gaussian noise (SD 0.05) plus GCaMP-like transients (exponential decay 1 s, amplitude
  0.3-1.0) at Poisson times (0.03 Hz), plus ensemble events shared by a random 30% of
  the ROIs (0.01 Hz); F = F0 (log-normal around 300, bleaching with a 1 h time
  constant) x (1 + truth) + 0.7 x neuropil (150 + a 100 s oscillation + noise); 85% of
  the ROIs are cells. Written in blocks of ROIs (``numpy.lib.format.open_memmap``) by
  the parent process, seed 0.
- The folder is written, and each measurement runs, in a fresh process (``spawn``), so
  each peak resident set size is its own and the generator's memory does not count. Peak
  RSS is ``VmHWM`` of ``/proc/self/status`` (reset at exec; ``ru_maxrss`` elsewhere), which
  counts file pages mapped into the process. The folder was just written, so it is in the page
  cache for both sides.

  - streamed: ``summarize_suite2p(folder, rng=0, n_shuffles=...)`` (default dF/F: running
    8th percentile over 60 s; default ``chunk_cells``, or ``--chunk-cells``);
  - naive (the baseline): ``numpy.load`` of F and Fneu whole (no memory map), the cells
    picked out, ``compute_dff`` on the whole matrix, and ``summarize_chunks`` on it as
    one chunk: the same numbers, holding everything at once;
  - imports only: the interpreter with numpy, scipy, pandas and ketasim loaded, for
    scale.

  Both sides leave out the exact per-pair shift test (``pair_test=False``, so
  ``correlated_pair_fraction`` is NaN): its time grows with the square of the cells
  (about 1.4 million pairs here, each an inverse FFT over every frame) and its memory is
  two blocks of cells, whatever the file size. The two sides' readouts are compared
  (they must be identical). Targets: streamed
  peak RSS under 2 GB and not growing with the file. Printed: size, wall time and peak
  RSS of each side, and the ratio naive / streamed. The last line is
  ``rss ratio naive/streamed: <ratio>``.

Run: ``.venv/bin/python benchmarks/bench_suite2p.py`` (``--size-gb 0.25`` for a quick
run; ``--keep DIR`` writes the folder there and keeps it).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

FS = 30.0
BLOCK_ROIS = 50


def generate(folder: Path, n_rois: int, n_frames: int, seed: int = 0) -> None:
    from scipy.signal import lfilter

    plane = folder / "suite2p" / "plane0"
    plane.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / FS
    decay = math.exp(-1.0 / (FS * 1.0))
    ensemble = rng.random(n_frames) < 0.01 / FS  # shared event frames
    members = rng.random(n_rois) < 0.3
    bleach = np.exp(-t / 3600.0)
    wave = 150.0 + 20.0 * np.sin(2 * np.pi * t / 100.0)
    shape = (n_rois, n_frames)
    f_mm = np.lib.format.open_memmap(plane / "F.npy", mode="w+", dtype=np.float32, shape=shape)
    n_mm = np.lib.format.open_memmap(plane / "Fneu.npy", mode="w+", dtype=np.float32,
                                     shape=shape)
    for a in range(0, n_rois, BLOCK_ROIS):
        b = min(n_rois, a + BLOCK_ROIS)
        k = b - a
        spikes = (rng.random((k, n_frames)) < 0.03 / FS).astype(np.float64)
        spikes[members[a:b]] += ensemble
        spikes *= rng.uniform(0.3, 1.0, (k, n_frames))
        truth = lfilter([1.0], [1.0, -decay], spikes, axis=1)
        truth += rng.normal(0.0, 0.05, (k, n_frames))
        f0 = np.exp(rng.normal(math.log(300.0), 0.3, (k, 1))) * bleach
        fneu = wave + rng.normal(0.0, 5.0, (k, n_frames))
        f_mm[a:b] = f0 * (1.0 + truth) + 0.7 * fneu
        n_mm[a:b] = fneu
    f_mm.flush()
    n_mm.flush()
    del f_mm, n_mm
    is_cell = rng.random(n_rois) < 0.85
    prob = np.where(is_cell, rng.uniform(0.5, 1.0, n_rois), rng.uniform(0.0, 0.5, n_rois))
    np.save(plane / "iscell.npy", np.column_stack([is_cell.astype(float), prob]))
    np.save(plane / "ops.npy", {"fs": FS, "nframes": n_frames, "neucoeff": 0.7},
            allow_pickle=True)


def _peak_mb() -> float:
    """Peak RSS of this process (MB): VmHWM, which exec resets (ru_maxrss would carry the
    RSS of the parent at fork), else ru_maxrss."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _generate_child(folder: str, n_rois: int, n_frames: int) -> None:
    generate(Path(folder), n_rois, n_frames)


def _child(mode: str, folder: str, n_shuffles: int, chunk_cells: int | None, queue) -> None:
    from ketasim.analysis.calcium import DffRecording
    from ketasim.analysis.suite2p import compute_dff, summarize_chunks, summarize_suite2p

    t0 = time.perf_counter()
    if mode == "imports":
        queue.put((mode, 0.0, _peak_mb(), None))
        return
    if mode == "streamed":
        out = summarize_suite2p(folder, rng=0, n_shuffles=n_shuffles, chunk_cells=chunk_cells,
                                pair_test=False)
        readouts = out.as_dict()
    else:
        plane = Path(folder) / "suite2p" / "plane0"
        f = np.load(plane / "F.npy")
        fneu = np.load(plane / "Fneu.npy")
        cells = np.flatnonzero(np.load(plane / "iscell.npy")[:, 0] == 1)
        fs = float(np.load(plane / "ops.npy", allow_pickle=True).item()["fs"])
        dff = compute_dff(f[cells], fneu[cells], fs)
        rec = DffRecording(dff, fs, np.arange(dff.shape[1]) / fs,
                           tuple(str(c) for c in cells), folder)
        readouts = summarize_chunks([rec], rng=0, n_shuffles=n_shuffles,
                                    pair_test=False).as_dict()
    queue.put((mode, time.perf_counter() - t0, _peak_mb(), readouts))


def measure(mode: str, folder: Path, n_shuffles: int, chunk_cells: int | None):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(mode, str(folder), n_shuffles, chunk_cells, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def _same(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k])
                                and math.isnan(b[k])) for k in a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-gb", type=float, default=1.0,
                    help="size of F.npy + Fneu.npy (GB, 1e9 bytes)")
    ap.add_argument("--rois", type=int, default=2000)
    ap.add_argument("--n-shuffles", type=int, default=1000)
    ap.add_argument("--chunk-cells", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None,
                    help="write the folder here and keep it (default: a temporary folder)")
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
    n_frames = int(args.size_gb * 1e9 / (2 * 4 * args.rois))
    base = args.keep if args.keep else Path(tempfile.mkdtemp(prefix="bench-suite2p-"))
    folder = base / "session"
    try:
        t0 = time.perf_counter()
        # in a child, so that the parent (whose RSS a forked child starts from) stays small
        proc = multiprocessing.get_context("spawn").Process(
            target=_generate_child, args=(str(folder), args.rois, n_frames))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"generating the folder failed (exit code {proc.exitcode})")
        plane = folder / "suite2p" / "plane0"
        size = sum((plane / n).stat().st_size for n in ("F.npy", "Fneu.npy"))
        print(f"suite2p folder: {args.rois:,d} ROIs x {n_frames:,d} frames at {FS:g} Hz "
              f"({n_frames / FS / 60:.1f} min), F.npy + Fneu.npy {size / 1e9:.3f} GB, "
              f"written in {time.perf_counter() - t0:.1f} s")
        _, _, rss0, _ = measure("imports", folder, args.n_shuffles, args.chunk_cells)
        print(f"imports only          peak RSS {rss0:8.1f} MB")
        _, wall_s, rss_s, out_s = measure("streamed", folder, args.n_shuffles,
                                          args.chunk_cells)
        print(f"streamed (summarize_suite2p)  wall {wall_s:7.1f} s  peak RSS {rss_s:8.1f} MB  "
              f"({out_s['n_cells']:,d} cells, {out_s['transient_rate_per_min']:.2f} "
              f"transients/min, {out_s['sync_event_rate_per_min']:.2f} sync events/min)")
        print(f"streamed peak RSS under 2 GB: {rss_s < 2048}; above imports: "
              f"{rss_s - rss0:.1f} MB for {size / 1e6:,.0f} MB of input")
        if args.skip_naive:
            return
        _, wall_n, rss_n, out_n = measure("naive", folder, args.n_shuffles, args.chunk_cells)
        print(f"naive (np.load whole)         wall {wall_n:7.1f} s  peak RSS {rss_n:8.1f} MB")
        print(f"same readouts: {_same(out_s, out_n)}")
        print(f"wall ratio naive/streamed: {wall_n / wall_s:.2f}")
        print(f"rss ratio naive/streamed: {rss_n / rss_s:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
