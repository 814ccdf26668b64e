"""Benchmark: a repeated-dosing trial with weekly MADRS, streamed to Parquet, against a
per-patient scipy ``solve_ivp`` loop of the same signalling model.

Protocol (issue 14, items 9 and 10; written down here so the numbers can be reproduced):

- Workload: ``--patients`` virtual patients (default 2,000; the full workload is
  ``--patients 100000``), half on placebo (saline iv at days 0, 3, 7, 10, 14, 17), half
  on ketamine 0.5 mg/kg iv over 40 min twice weekly for three weeks (days 0, 3, 7, 10,
  14, 17); every patient carries the ``major_depression`` stressor from day -60 (for
  120 days); MADRS (total, suicide item, anhedonia) at day -1 and weekly to day 42 (the
  assay's default options: the synaptic state is integrated on a 1 h grid from 21 days
  before the first visit, so each patient's signalling outputs are recorded at 1,537
  times). One patient is 6 patient-weeks (the trial's length; the 60-day stress lead-in
  is simulated too but not counted).
- ketasim: the trial runs through ``ketasim.simulate`` arm by arm, in pieces of
  ``--piece`` patients (default 5,000), each piece a scenario of its own, with the
  runner's own chunking inside it (``--chunk``: its ``chunk_subjects``, default the
  runner's). Each piece's readouts are appended to one Parquet file with pyarrow's
  ``ParquetWriter`` as soon as the piece is done, so memory stays bounded: the runner
  has no streaming hook (it concatenates every chunk's readouts in memory and returns
  them at the end), so the pieces do what a streaming runner would. A piece has its own
  seed (``SeedSequence([seed, piece]).generate_state(1)[0]``; the ``seed`` and ``piece``
  columns of the file), because the runner keys a subject's random streams by its index
  in the arm: a patient is (arm, seed, subject). ``--whole`` instead runs the whole
  two-arm trial in one ``ketasim.simulate`` call (piece 0's seed) and writes its
  readouts at the end, to measure what holding them all costs. The first call
  (compile or cache load, on 2 patients) is made beforehand and reported separately.
  Timed: every ``simulate`` call and Parquet append.
- Reference: for a sample of ``--ref-patients`` (default 20, half per arm, spread over
  piece 0), the same patients (their sampled parameter vector and event table, from
  ``sample_cohort`` and ``compile_arm`` as the runner builds them) integrated one at a
  time with ``scipy.integrate.solve_ivp`` on the generated numba right-hand side and its
  analytic Jacobian (``ketasim.signaling._generated``: ``rhs``, ``jac``, ``outputs``),
  segment by segment between event times (events applied as the batched solver does),
  the outputs the MADRS assay reads (``formation_drive``, ``elimination_drive``,
  ``synaptic_potentiation``, and since 2026-12-07 ``structural_formation``) computed on
  the same 1,537-point grid. Method: LSODA or
  BDF, whichever is faster on the first sample patient (``--ref-method auto``); both
  sides at the same ``--rtol`` and ``--atol`` (ketasim's defaults, 1e-6 and 1e-9).
  Reference time per patient is averaged per arm and extrapolated linearly to the
  trial's patients. Each sample patient counts with its best time of ``--ref-repeats``
  passes (default 3): over the few seconds the sample takes, a single pass swung from
  19 to 35 ms a patient with another process's load on this machine (one run read
  49.9x that way). ketasim's side is one timed run of the whole trial, so this favours
  the reference. It does signalling only (no cohort sampling, rating or Parquet),
  so ``speedup`` (reference time / ketasim's whole-trial time) is conservative; the
  ratio of signalling alone (``simulate_signaling`` on the sample, timed) is printed
  too.
- Accuracy: on the sample, the largest difference between ketasim and the reference
  for each of the outputs at the seven visits, relative to the output's largest
  absolute value in the sample; the largest relative difference of the latent MADRS
  total (``ketasim.clinical.assays.madrs_latent`` on each side's trajectories, same
  patient traits); and how many item-by-item ratings (MADRS total, rated from the
  reference's trajectories with the same rater streams) equal ketasim's, read back
  from the Parquet file. Both sides are also compared with a tight LSODA run (rtol
  1e-10, atol 1e-14) on one patient per arm.
- Memory: the process's peak resident set size (``ru_maxrss``); target under 2 GB.

Figures (measured once each, 2 cores, numba's 2 threads, Python 3.11, scipy 1.17, warm
numba cache; another process used up to one of the two cores at times, which moves the
timings by up to about 30% over a run (up to 2x on single pieces); ``--ref-method auto`` chose LSODA, about 30 ms on the first
patient against about 200 ms for BDF):

- 2026-12-04, later, after the generated code's loops over the target nodes, IEEE
  division and hoisted PK factors (docs/design.md, "The solver"): ``--patients 2000``
  ketasim 1.55 ms/patient (3,870 patient-weeks/s), reference 20.27 ms/patient, speedup
  13.1 (signalling alone 24.6); ``--patients 100000``: ketasim 137.2 s (1.37
  ms/patient, 4,373 patient-weeks/s), reference 20.33 ms/patient (2,033 s
  extrapolated), speedup 14.8 (signalling alone 21.3); MADRS latent 3.1e-6 relative,
  140 of 140 rated totals identical; peak RSS 516 MB; wall 140 s. Then with the
  compiled keyed seeding (ketasim.core.streams.KeyedSeedSequence, same streams):
  ``--patients 100000`` ketasim 131.4 s (1.31 ms/patient, 4,567 patient-weeks/s),
  reference 19.76 ms/patient, speedup 15.0 (signalling alone 30.2), same accuracy,
  peak RSS 505 MB, wall 134 s. Of a ketamine piece's
  time, signalling is about 40%, and the MADRS assay about 55%, a fifth of which is
  building the per-patient random streams (numpy ``SeedSequence`` + ``PCG64``, about
  25 us each, some 11 per patient; about 4 us since).
- 2026-12-04, later still, with the clinician-rated scales rating a chunk's visits in one
  array operation (same draws, same ratings): ``--patients 100000`` ketasim 101.7 s
  (1.02 ms/patient, 5,899 patient-weeks/s), reference 19.98 ms/patient (1,998 s
  extrapolated), speedup 19.6 (signalling alone on the sample 21.7; it varies from 21
  to 34 between runs with the load on the machine); MADRS latent 3.1e-6 relative, 140
  of 140 rated totals identical; peak RSS 473 MB; wall 104.5 s. Then with the synaptic
  state's grid recurrences compiled, the patient traits drawn on first use (MADRS reads
  three of them) and one-word stream keys split without a loop (all identical numbers):
  ``--patients 100000`` ketasim 87.4 s (0.87 ms/patient, 6,866 patient-weeks/s),
  reference 19.14 ms/patient (1,914 s extrapolated), speedup 21.9; same accuracy;
  peak RSS 497 MB; wall 89.8 s. Then with the kept outputs computed from just what
  each needs (``outputs_sel``; same numbers): ketasim 84.6 s (0.85 ms/patient, 7,094
  patient-weeks/s), reference 20.41 ms/patient, speedup 24.1 (signalling alone on the
  sample 22.3); same accuracy; peak RSS 502 MB; wall 92.1 s.
- 2026-12-04, seventh session, with the visits', mood paths' and first traits' streams
  drawn for a whole chunk in compiled code (``ketasim.core.pcg64``; numpy's numbers bit
  for bit): ``--patients 100000`` ketasim 66.9 to 76.8 s over three runs (0.67 to 0.77
  ms/patient; the machine had a load of 1.2 to 1.5 from another process), reference 18.98
  to 20.15 ms/patient, speedup 26.2 to 28.4 (signalling alone on the sample 33.4 to
  34.9); same accuracy (140 of 140 rated totals identical); peak RSS 494 MB (a first
  version kept each chunk's trajectories alive through the traits and reached 1,072 MB;
  fixed and tested). A 5,000-patient ketamine piece is now about 5.5 s: signalling about
  4.6 s, the MADRS assay about 0.9 s (the synaptic-state grid, 0.5 s, most of it). Two
  later single-pass runs read 33.6 and 49.9 with the reference's time swung to 24.5 and
  35.4 ms a patient by the load; since then each reference patient counts with its best
  of three passes: ketasim 65.1 s (0.65 ms/patient, 9,215 patient-weeks/s), reference
  18.47 ms/patient, speedup 28.4 (signalling alone 35.5), peak RSS 494 MB, wall 68.2 s.
- 2026-12-04, eighth session, with the chunk's rater assignments, the cohort's parameter
  normals and the symptom grid's clipping drawn or done in compiled code for the whole
  chunk, and the grid's recurrences over patients in parallel (same numbers):
  ``--patients 100000`` ketasim 60.1 s (0.60 ms/patient, 9,982 patient-weeks/s; a
  placebo piece about 1.07 s, a ketamine piece about 4.95 s, of which signalling about
  4.6 s), reference 19.39 ms/patient, **speedup 32.3** (signalling alone 36.3); same
  accuracy (140 of 140 rated totals identical); peak RSS 511 MB; wall 67.5 s (a second
  run, the machine otherwise idle: ketasim 57.6 s, reference 18.80 ms/patient, speedup
  32.7, signalling alone 35.1, peak RSS 516 MB). The MADRS
  assay of a 5,000-patient piece went from about 0.7 s to 0.36 s. What is left is the
  ketamine patients' signalling (about 46 of the 60 s): 50x needs about 37 s in all.
  Skipping the Jacobian's chains for drug slots an arm leaves empty (tried by hand on
  the generated code: bitwise the same) saves about 4.5% of a ketamine patient (1.67 to
  1.60 ms), and recording the 1,537-point grid costs 0.07 (placebo) to 0.10 (ketamine)
  ms a patient against 7 points, almost none of it in the kept outputs; interpolating
  only the states those outputs read (built, bitwise the same, then reverted) took a
  placebo patient from 0.196 to 0.181 ms and a ketamine one from 1.673 to 1.655 ms.
  None of these closes the gap, so none was kept. A right-hand side (about 210 ns)
  spends about a sixth of its time in three non-integer powers (about 12 ns each: ERK
  on TrkB, 0.7; on PKA, 0.2; mTORC1 on ERK, 0.8), which no bitwise-equal shortcut
  replaces.
- 2026-12-05, eleventh session (after sig.potentiation_synthesis_exponent went from 4 to
  6 with the circuit's assemblies), ``--patients 10000``: three runs with another load
  of about 1 on the machine read 21.2, 20.4 and 26.4 (ketasim 9.1, 9.3 and 7.4 s; a
  ketamine piece of 5,000 patients 7.1, 7.4 and 6.0 s; reference 19.2, 18.9 and 19.4
  ms/patient; signalling alone on the sample 22.9, 18.1 and 36.5); the same accuracy
  (140 of 140 rated totals identical), peak RSS 505 MB. With the exponent set back to 4
  (a check, not kept) one such run took 8.3 s against 9.1-9.3 s, so the steeper gate
  costs the ketamine patients some steps; most of the spread is the machine's load.
- 2026-12-05, twelfth session, idle machine, ``--patients 100000``: ketasim 71.3 s (0.71
  ms/patient, 8,410 patient-weeks/s; a placebo piece of 5,000 about 1.4 s, a ketamine
  piece 4.8-7.0 s), reference 18.89 ms/patient (1,889 s extrapolated), **speedup 26.5**
  (signalling alone on the sample 32.2); 140 of 140 rated totals identical; peak RSS 469
  MB; wall 74.9 s. Profiled by piece (cProfile): a ketamine piece spends 4.76 of 5.35 s
  in the batched solver and 0.48 s in the MADRS assay; a placebo piece 0.79 of 1.38 s in
  the solver (half of it recording the 1,537-point grid) and 0.52 s in the assay. Steps
  of one ketamine patient (696 in all): about 70 on each dosing day (48 in the first 6
  h: the 40-min infusion takes steps of 2-3 min), 16 and 11 on the next two days, 18 in
  the 60-day lead-in. So reaching 50x (37.8 s) would take the ketamine patients'
  signalling from about 47 to about 20 s, more than a higher-order method's fewer steps
  in the smooth stretches can give.
- 2026-12-05, thirteenth session, after the fitted HNK AMPA potency and sig.k_synthesis
  1 per h (with the structural refit), idle machine, ``--patients 100000``: ketasim 61.6 s
  (0.62 ms/patient, 9,742 patient-weeks/s; a ketamine piece of 5,000 about 5.0 s),
  reference 18.47 ms/patient (1,847 s extrapolated), **speedup 30.0** (signalling alone
  on the sample 33.1); outputs within 2.5e-7 of their range, MADRS latent 2.2e-6, 140 of
  140 rated totals identical; against tight LSODA ketasim 1.1e-8, reference 8.3e-8; peak
  RSS 470 MB; wall 64.8 s.
- 2026-12-05, fourteenth session (the Drd1 PKA gate and the reward circuits' own PKA state:
  63 states), idle machine, ``--patients 100000``: ketasim 60.9 s (0.61 ms/patient, 9,854
  patient-weeks/s), reference 18.27 ms/patient (1,827 s extrapolated), **speedup 30.0**
  (signalling alone on the sample 33.4); 140 of 140 rated totals identical, MADRS latent
  2.4e-6; peak RSS 465 MB; wall 63.9 s. ``--patients 10000`` a few minutes earlier: 25.9.
- 2026-12-05, sixteenth session (the SERT node and the serotonergic adaptation: 64
  states; nothing in this workload uses them), ``--patients 100000`` on a machine slower
  than before for both sides (idle, load 0.5): ketasim 80.1 s (0.80 ms/patient, 7,492
  patient-weeks/s), reference 30.87 ms/patient (3,087 s extrapolated; LSODA 52 ms on the
  first patient against about 30 ms in earlier sessions), speedup 38.5 (signalling alone
  on the sample 37.0); outputs within 2.5e-7 of their range, MADRS latent 1.3e-6, 140 of
  140 rated totals identical; against tight LSODA ketasim 1.3e-8, reference 8.3e-8; peak
  RSS 464 MB; wall 85.4 s. The higher ratio is the slower reference, not a faster
  ketasim: the previous commit and this one, run alternately minutes later with
  ``--patients 10000``, read 35.4 and 35.5-35.6 (ketasim 0.79-0.80 ms/patient each,
  reference 28.1-28.4 ms/patient), so the additions cost nothing measurable here.

Where the signalling's time goes (one thread, 400 patients, the MADRS outputs on its
1,537-time grid): a ketamine patient takes 720 solver steps (351 RODAS, 370 DP5, 14
rejected) in about 1.8 ms, a placebo patient 48 steps in about 0.2 ms, 0.08 ms of which
is recording the grid. Taking the PK states out of the error norm (not a fix: the
outputs then move by 1.8e-5 of their range) leaves 596 steps; the cascade's states alone
need 435. RODAS alone takes 899 steps (2.5 ms) and DP5 alone 3,908 (6.3 ms), against
the default switching's 720 (1.7 ms); interpolating only the states the kept outputs
read did not measurably change the time (tried and reverted). A right-hand side costs
about 270 ns, the Jacobian 600 ns, a linear solve 60 ns. So 50x would need fewer
steps from a higher-order stiff method (order 5 would save perhaps a third of the
steps, at 8 stages instead of 6) or a cheaper right-hand side, not a faster assay.
Restarting after each event from the last accepted step (capped at the initial step's
3 min) instead of a fresh initial-step estimate (seventeenth session, 400 ketamine
patients, tried and reverted): 714 steps a patient against 726, so the restarts are not
where the steps go.
What a PK solved in closed form (linear compartments between events) could save at most
(eighteenth session, 400 ketamine patients, one process): with the 36 PK states left out
of the error norm (the RMS then over the 28 cascade states) a patient takes 659 steps in
1.10 ms against 726 in 1.27 ms, so the PK's own truncation error costs about a tenth of
the steps, far from the 40% that 50x needs; not built.
What a compiled multistep method could save (twentieth session, one ketamine patient of
the trial, scipy's own counters at rtol 1e-6, atol 1e-9, segment by segment as the
reference runs): LSODA 3,449 right-hand sides and 84 Jacobians, scipy's BDF 3,106
right-hand sides, 20 Jacobians and 329 LU factorisations, Radau 6,798 and 30 and 522,
against this solver's about 4,300 right-hand sides and 351 Jacobians (720 steps). At
this machine's costs (a ketamine patient's signalling 2.4 ms on one thread, about 0.35
us a right-hand side) a compiled BDF would take about 1.1 ms in right-hand sides plus its
factorisations and per-step work, perhaps 1.7 ms in all: about 1.4 times faster, less
accurate at the same tolerances (the reference's LSODA is 8e-8 from a tight run, this
solver 1.3e-8), and short of the 1.8 times the signalling would need; not built.
The same day (idle machine, ``--patients 10000``): ketasim 8.0 s (0.80 ms/patient; the
ketamine piece of 5,000 patients 6.7 s), reference 27.47 ms/patient, **speedup 34.4**
(signalling alone on the sample 23.5); 140 of 140 rated totals identical; peak RSS 453
MB. 50x would need 5.5 s for these 10,000 patients.
- 2026-12-06, twenty-fourth session (measurement streams keyed by visit time elsewhere;
  the MADRS path unchanged), ``--patients 10000``: ketasim 8.9 s (0.89 ms/patient, 6,738
  patient-weeks/s), reference 32.83 ms/patient (a slower machine: LSODA 51 ms on the
  first patient), **speedup 36.9** (signalling alone on the sample 42.9); 140 of 140
  rated totals identical, MADRS latent 1.3e-6; peak RSS 450 MB.
- 2026-12-06, twenty-sixth session (the glutamate surge x (1 - pyramidal shutdown)),
  ``--patients 100000``, load about 1.2: ketasim 67.5 s (0.67 ms/patient, 8,890
  patient-weeks/s; a ketamine piece of 5,000 about 5.5 s), reference 21.76 ms/patient
  (2,176 s extrapolated; LSODA 32.5 ms on the first patient), **speedup 32.2** (signalling
  alone on the sample 25.5); outputs within 2.5e-7 of their range, MADRS latent 1.3e-6,
  140 of 140 rated totals identical; against tight LSODA ketasim 1.3e-8, reference 8.3e-8;
  peak RSS 527 MB; wall 78.5 s. Still short of 50x: the reference is faster on this
  machine than in the twenty-fourth session (21.8 against 32.8 ms/patient), ketasim about
  the same.
- 2026-12-07, twenty-ninth session (psilocybin's 5-HT2A gain, glutamate dialysis and the
  human PK residual error since; nothing this workload reads changed), ``--patients
  100000``, load about 0.8: ketasim 61.9 s (0.62 ms/patient, 9,698 patient-weeks/s; a
  placebo piece of 5,000 about 1.1 s, a ketamine piece about 5.0 s), reference 18.32
  ms/patient (1,832 s extrapolated; LSODA 28.7 ms on the first patient), **speedup 29.6**
  (signalling alone on the sample 23.0); outputs within 2.5e-7 of their range, MADRS
  latent 1.3e-6, 140 of 140 rated totals identical; against tight LSODA ketasim 1.3e-8,
  reference 8.3e-8; peak RSS 465 MB; wall 65.5 s. 50x would need about 36.6 s: the ten
  ketamine pieces alone take 50.6 s.
- 2026-12-07, thirtieth session (the patients' restoration pool: the MADRS assay reads a
  fourth output, ``structural_formation``, and integrates the pool and the restored and
  stable synapses on its grid; the human brain:plasma partition 6 instead of 2),
  ``--patients 100000``: ketasim 71.7 s (0.72 ms/patient, 8,364 patient-weeks/s; a
  placebo piece of 5,000 about 1.25 s, a ketamine piece about 5.9 s), reference 21.99
  ms/patient (2,199 s extrapolated; LSODA 37.5 ms on the first patient), **speedup
  30.7** (signalling alone on the sample 37.1); outputs within 2.5e-7 of their range,
  MADRS latent 1.1e-5, 140 of 140 rated totals identical; against tight LSODA ketasim
  2.8e-8, reference 8.3e-8; peak RSS 486 MB; wall 75.2 s. Minutes later, ``--patients
  20000`` with the previous commit (7711288) and this one in turn: ketasim 13.6 against
  14.3 s (0.68 against 0.71 ms/patient), reference 18.38 against 22.26 ms/patient (the
  higher partition costs LSODA more), speedup 27.0 against 31.2: the higher ratio is the
  slower reference; ketasim itself is about 5% slower.
- 2026-12-07, thirty-first session (the solver rejects and shortens a trial step whose
  error estimate is not finite, a branch this workload never takes), ``--patients
  20000`` with another process loading the machine (load average 0.7-1.1): ketasim
  19.9 s (1.00 ms/patient; a ketamine piece about 8.2 s), reference 22.83 ms/patient,
  speedup 22.9 (signalling alone on the sample 30.8); same accuracy (140 of 140 rated
  totals identical). A/B on 1,000 ketamine patients of this trial
  (``simulate_signaling``, four calls each, alternating checkouts, same load): this
  commit 1.00-1.38 s, the previous one (78947f4) 1.02-1.71 s, the same 822.6 steps per
  patient: the lower ratio is the load, not the change.
- 2026-12-07, thirty-fifth session (random-stream input checks, S-ketamine's norketamine
  fraction 1 in humans; a helper session shared the machine), ``--patients 10000``:
  ketasim 7.8 s (0.78 ms/patient, 7,737 patient-weeks/s; the ketamine piece of 5,000
  about 6.2 s), reference 21.32 ms/patient (LSODA 35.3 ms on the first patient),
  **speedup 27.5** (signalling alone on the sample 31.8); outputs within 2.5e-7 of their
  range, MADRS latent 1.5e-5, 140 of 140 rated totals identical; against tight LSODA
  ketasim 4.3e-8, reference 8.3e-8; peak RSS 501 MB; wall 15.9 s. Then with the reward
  circuits' own dopamine (65 states; machine otherwise idle): ketasim 7.6 s (0.76
  ms/patient, 7,865 patient-weeks/s), reference 21.58 ms/patient, **speedup 28.3**
  (signalling alone 34.1); 140 of 140 identical; against tight LSODA ketasim 2.3e-8;
  peak RSS 455 MB; wall 11.3 s.
- 2026-12-07, thirty-sixth session (the dyskinesia priming gate ``lid_denervation``, one
  more expression per right-hand side), ``--patients 10000``, back to back on a machine
  slower and noisier than the day before (both sides about 1.5x slower): this commit
  ketasim 13.1 and 16.6 s, reference 33.23 and 34.65 ms/patient, **speedup 25.4 and
  20.8** (signalling alone 29.3 and 35.6); the session's start (4d29c2a, warm cache)
  16.0 s, 38.92 ms/patient, speedup 24.3 (signalling alone 23.4): the runs of one
  checkout differ more than the checkouts. Outputs within 2.5e-7 of their range;
  against tight LSODA ketasim 2.3e-8; peak RSS 453 MB.
- 2026-12-07, thirty-seventh session (2d7c5da; that session changed clinical values only,
  which the benchmark's signalling does not read), ``--patients 10000``, one run on a
  faster machine: ketasim 6.1 s (0.61 ms/patient, 9,796 patient-weeks/s), reference
  14.82 ms/patient, **speedup 24.2** (signalling alone 30.0); 140 of 140 identical;
  against tight LSODA ketasim 2.3e-8; peak RSS 511 MB; wall 12.4 s. 50x would need
  about 0.30 ms a patient.
- 2026-12-07, thirty-eighth session (the human brain:plasma partition 5.5 instead of 6,
  which the benchmark's ketamine patients read), ``--patients 10000``, one run: ketasim
  6.1 s (0.61 ms/patient, 9,849 patient-weeks/s), reference 16.60 ms/patient, **speedup
  27.3** (signalling alone 24.2); outputs within 2.5e-7 of their range, MADRS latent
  5.0e-7, 140 of 140 identical; against tight LSODA ketasim 1.9e-8, reference 8.3e-8;
  peak RSS 453 MB; wall 9.1 s.
- 2026-12-08, thirty-ninth session (no model or solver change), ``--patients 10000``,
  one run on an idle machine: ketasim 5.6 s (0.56 ms/patient, 10,768 patient-weeks/s;
  the placebo piece 1.1 s), reference 14.43 ms/patient, **speedup 25.9** (signalling
  alone on the sample 31.2); outputs within 2.5e-7 of their range, MADRS latent 5.0e-7,
  140 of 140 identical; against tight LSODA ketasim 1.9e-8, reference 8.3e-8; peak RSS
  510 MB; wall 11.4 s. Where a ketamine patient's steps go (200 patients per arm, the
  default method): 815 steps a ketamine patient against 48 a placebo one (0.82 and 0.11
  ms a patient), 26 events against 2; with the other methods 1,092 (``rodas``, 1.35 ms)
  and 1,917 (``auto_ros3``, 1.31 ms). One dose alone takes about 170 steps to 400 h: 26
  to 1 h (20 of them in the 40-min infusion), 63 more to 24 h, then a step every 1.7 h
  over the next two days and every 6.4 h from 72 to 400 h (the model's slow states
  relaxing at rtol 1e-6 and order 4; which state limits the step was not measured). So the ketamine patients'
  steps are not events or restarts but the slow tail after each of the six doses; 50x
  needs each step (about 2 us of CPU: six right-hand sides, six triangular solves and a
  Jacobian) about twice as cheap. The arm's patients share every event time (only the
  values differ), so the next step is a kernel that advances several patients in lock
  step (one step size, the largest error over them) with a right-hand side over patient
  lanes that the compiler vectorises; numba here has no SVML, so the three non-integer
  powers of a right-hand side would stay scalar. Not started. Probed in the fortieth
  session (2026-12-08, ``docs/research/lane_rhs_probe.py``, the figures in its
  docstring and in docs/design.md, "The solver"): with numba's SLP vectoriser on and one
  flat work array per lane group the right-hand side over 8 lanes is 1.0-1.85x cheaper
  a patient than the scalar call, depending on the run; with the Jacobian and the
  lock-step's extra steps still to pay, not the 2x needed, so not built.
- ``--patients 2000`` (one piece per arm), 2026-12-04 with the default solver's RODAS:
  ketasim 3,295 patient-weeks/s (3.6 s, 1.82 ms/patient), reference 303 patient-weeks/s
  (19.8 ms/patient, extrapolated from 10), speedup 10.9 (signalling alone 16.0; 9.1
  with the earlier DP5/ROS3 switching); accuracy: outputs at most 1.5e-7 of their range,
  70 of 70 rated totals identical; against tight LSODA ketasim 1.3e-8, reference 5.4e-8;
  peak RSS 415 MB. (The reference calls the same generated right-hand side and
  Jacobian, so it got faster too when the Jacobian did: 25 to 31 ms/patient before.)
- ``--patients 100000`` (10 pieces of 5,000 per arm), same day: ketasim about 155 s
  (1.55 ms/patient), reference 20.65 ms/patient (extrapolated: 2,065 s), speedup 13.3
  (signalling alone 19.8); MADRS latent 3.1e-6 relative, 70 of 70 rated totals
  identical; peak RSS 484 MB; wall 161 s. Earlier (order-3 stiff method, before the
  Jacobian's shared partials): 353 s, speedup 6.9.
- ``--patients 100000 --whole`` (one ``simulate`` call, the runner holding every
  readout): 1,949 patient-weeks/s (308 s), peak RSS 1,156 MB (20,000 patients: 533 MB):
  about 7 kB more per patient, from the readouts the runner keeps as pandas object
  columns and concatenates (per arm, then across arms) before returning, plus this
  script's Arrow copy of them; at this rate 2 GB is reached near 220,000 patients.
  2026-12-04, ninth session, with one string object per distinct readout name and unit
  (a new one per row before) and no whole-table copies at the end of ``simulate``:
  ketasim 57.7 s (10,407 patient-weeks/s), reference 18.91 ms/patient, speedup 32.8,
  140 of 140 rated totals identical, peak RSS 856 MB, wall 61.3 s. In pieces (the
  default), the same session: ketasim 58.7 s (10,227 patient-weeks/s), reference 18.85
  ms/patient, speedup 32.1 (signalling alone 27.6), peak RSS 557 MB, wall 71.5 s.

The issue's target of >= 50x is not met against this reference: the per-patient loop
calls compiled code for every right-hand side (about 1 us) and Jacobian, and LSODA
(variable order) needs about 4,000 right-hand side calls per patient, while ketasim's
solver (order-4 Rosenbrock RODAS / order-5 explicit, switched on stiffness) takes about
710 steps of about 6 right-hand side evaluations each; the speedup is what batching, two threads
and a compiled integrator loop buy. With the right-hand side interpreted by Python
(``rhs.py_func``, about 1.2 ms per call, so about 5 s per patient) the reference would
be some 200 times slower, which measures Python rather than the solvers.

The last line printed is ``speedup: <ratio>``. Run: ``.venv/bin/python
benchmarks/bench_trial.py`` (about 10 s), ``--patients 100000`` for the full workload
(about 3 min).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import ketasim

# numba's cache folder: set before numba and the jitted modules are imported
ketasim.configure()

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.integrate import solve_ivp

from ketasim.clinical.assays import MADRS_ASSAY, madrs_latent
from ketasim.clinical.model import ClinicalParams
from ketasim.core.assay import AssayContext, resolve_options
from ketasim.experiment.cohort import sample_cohort
from ketasim.experiment.runner import READOUT_COLUMNS
from ketasim.params import load_registry
from ketasim.scenario import load_scenario_text
from ketasim.signaling import _generated as gen
from ketasim.signaling import spec
from ketasim.signaling.protocol import compile_arm
from ketasim.signaling.simulate import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    initial_state,
    parameter_vector,
    simulate_signaling,
    start_time,
)
from ketasim.signaling.solver import EV_ADD_PARAM, EV_ADD_STATE, full_parameter_vector

DOSE_DAYS = (0, 3, 7, 10, 14, 17)
VISIT_DAYS = (-1, 7, 14, 21, 28, 35, 42)
TRIAL_WEEKS = 6
ARMS = ("placebo", "ketamine")
DOSE = {"placebo": "drug: saline, route: iv",
        "ketamine": "drug: ketamine, dose: 0.5 mg/kg, route: iv, over: 40min"}
OUTPUTS = MADRS_ASSAY.outputs  # what the MADRS assay reads from the signalling layer
SCHEMA = pa.schema([("arm", pa.string()), ("subject", pa.int64()), ("assay", pa.string()),
                    ("readout", pa.string()), ("time_h", pa.float64()),
                    ("value", pa.float64()), ("unit", pa.string()), ("piece", pa.int64()),
                    ("seed", pa.int64())])
assert list(SCHEMA.names[: len(READOUT_COLUMNS)]) == READOUT_COLUMNS


def scenario_text(arms: dict[str, int], seed: int) -> str:
    """The trial as a scenario: ``arms`` maps arm name (placebo, ketamine) to patients."""
    lines = ["name: bench_trial", "species: human", f"seed: {seed}", "arms:"]
    visits = ", ".join(f"{d}d" for d in VISIT_DAYS)
    for name, n in arms.items():
        lines += [f"  - name: {name}", f"    n: {n}", "    protocol:",
                  "      - {at: -60d, stress: major_depression, duration: 120d}"]
        lines += [f"      - {{at: {d}d, {DOSE[name]}}}" for d in DOSE_DAYS]
        lines += ["    assays:", f"      - {{assay: madrs, at: [{visits}]}}"]
    return "\n".join(lines) + "\n"


def trial_scenario(arms: dict[str, int], seed: int):
    return load_scenario_text(scenario_text(arms, seed), "bench_trial")


def piece_seed(seed: int, piece: int) -> int:
    return int(np.random.SeedSequence([seed, piece]).generate_state(1)[0])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def arm_sizes(patients: int) -> dict[str, int]:
    return {"placebo": patients // 2, "ketamine": patients - patients // 2}


# ---------------------------------------------------------------- ketasim, streamed


def run_trial(args, registry, path: Path, progress=print) -> tuple[float, int]:
    """Run the trial through ketasim.simulate piece by piece (or whole), appending the
    readouts to ``path``; returns (seconds, rows)."""
    sizes = arm_sizes(args.patients)
    if args.whole:
        jobs = [(0, {a: n for a, n in sizes.items() if n > 0})]
    else:
        jobs = [(k, {arm: min(args.piece, n - a)})
                for arm, n in sizes.items() for k, a in enumerate(range(0, n, args.piece))]
    done, rows, elapsed = 0, 0, 0.0
    with pq.ParquetWriter(path, SCHEMA) as writer:
        for j, (k, arms) in enumerate(jobs):
            t = time.perf_counter()
            seed = piece_seed(args.seed, k)
            res = ketasim.simulate(trial_scenario(arms, seed), registry=registry,
                                   rtol=args.rtol, atol=args.atol,
                                   chunk_subjects=args.chunk)
            df = res.readouts.assign(piece=k, seed=seed)
            writer.write_table(pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False))
            rows += len(df)
            del res, df
            elapsed += time.perf_counter() - t
            done += sum(arms.values())
            what = ", ".join(arms) + ("" if args.whole else f" piece {k}")
            progress(f"  [{j + 1}/{len(jobs)}] {what}: {done:,}/{args.patients:,} patients, "
                     f"{elapsed:.1f} s, {done * TRIAL_WEEKS / elapsed:,.0f} patient-weeks/s, "
                     f"peak RSS {peak_rss_mb():.0f} MB")
    return elapsed, rows


# ---------------------------------------------------------------- scipy reference


class Reference:
    """One patient at a time with solve_ivp on the generated rhs and Jacobian."""

    def __init__(self, grid: np.ndarray):
        from ketasim.signaling.jacobian import build  # sympy: built once, not timed

        entries = build().entries
        self.ji = np.array([e[0] for e in entries])
        self.jj = np.array([e[1] for e in entries])
        self.grid = grid
        self.sel = np.array([spec.OUTPUT_NAMES.index(o) for o in OUTPUTS])

    def patient(self, pvec_row, events, i, method, rtol, atol) -> np.ndarray:
        """(len(grid), len(OUTPUTS)) outputs of patient ``i`` of ``events``."""
        n, grid = spec.N_STATES, self.grid
        p = full_parameter_vector(pvec_row)
        y = initial_state(1)[0]
        jbuf = np.empty(gen.N_JAC)
        obuf = np.empty(gen.N_OUTPUTS)
        out = np.empty((grid.size, self.sel.size))

        def f(t, y):
            dy = np.empty(n)
            gen.rhs(t, y, p, dy)
            return dy

        def jac(t, y):
            gen.jac(y, p, jbuf)
            m = np.zeros((n, n))
            m[self.ji, self.jj] = jbuf
            return m

        def record(y, io):
            gen.outputs(y, p, obuf)
            out[io] = obuf[self.sel]

        ev_t, vals = events.times, events.values[i]
        t, k, io = start_time(events, grid), 0, 0
        while io < grid.size and grid[io] < t:  # before the start: the start state
            record(y, io)
            io += 1
        while True:
            while k < ev_t.size and ev_t[k] <= t:  # events, then outputs at t (after them)
                kind, idx = events.kind[k], events.index[k]
                if kind == EV_ADD_STATE:
                    y[idx] += vals[k]
                elif kind == EV_ADD_PARAM:
                    p[idx] += vals[k]
                else:
                    p[idx] = vals[k]
                k += 1
            while io < grid.size and grid[io] <= t:
                record(y, io)
                io += 1
            if io >= grid.size:
                return out
            t_end = min(ev_t[k] if k < ev_t.size else np.inf, grid[-1])
            j = io + int(np.searchsorted(grid[io:], t_end))  # outputs strictly before t_end
            sol = solve_ivp(f, (t, t_end), y, method=method, jac=jac, rtol=rtol, atol=atol,
                            t_eval=np.append(grid[io:j], t_end))
            if not sol.success:
                raise RuntimeError(f"solve_ivp ({method}) failed: {sol.message}")
            for c in range(j - io):
                record(sol.y[:, c], io + c)
            io, y, t = j, sol.y[:, -1].copy(), t_end


class Sample:
    """The reference patients of one arm: piece 0's patients, spread over it."""

    def __init__(self, arm_name, n_piece, n_sample, seed, registry):
        sc = trial_scenario({arm_name: n_piece}, seed)
        self.arm, self.seed = sc.arms[0], seed
        self.subjects = np.unique(np.linspace(0, n_piece - 1, n_sample).round().astype(int))
        self.cohort = sample_cohort(registry, "human", arm_name, n_piece, seed,
                                    subjects=self.subjects)
        self.events = compile_arm(self.arm, "human", self.cohort, registry)
        self.pvec = parameter_vector(self.cohort, self.events)
        self.at = np.asarray(self.arm.assays[0].at, dtype=float)
        self.options = resolve_options(MADRS_ASSAY, {}, "madrs")
        self.grid = np.unique(MADRS_ASSAY.sample_times(self.at, self.options))

    @property
    def n(self) -> int:
        return len(self.subjects)

    def context(self, values: np.ndarray, registry) -> AssayContext:
        """The MADRS assay's context for these patients, reading ``values`` (n, grid,
        OUTPUTS) as the runner's trajectory does."""
        grid = self.grid

        def trajectory(output, at):
            idx = np.searchsorted(grid, at)
            assert np.all(grid[idx] == at)
            return values[:, idx, OUTPUTS.index(output)]

        return AssayContext(self.seed, self.arm.name, "madrs", self.subjects, "human",
                            self.options, trajectory, registry)


def choose_method(ref: Reference, s: Sample, args) -> tuple[str, dict[str, float]]:
    if args.ref_method != "auto":
        ref.patient(s.pvec[0], s.events, 0, args.ref_method, args.rtol, args.atol)  # warm-up
        return args.ref_method, {}
    times = {}
    for m in ("LSODA", "BDF"):
        ref.patient(s.pvec[0], s.events, 0, m, args.rtol, args.atol)  # warm-up
        t = time.perf_counter()
        ref.patient(s.pvec[0], s.events, 0, m, args.rtol, args.atol)
        times[m] = time.perf_counter() - t
    return min(times, key=times.get), times


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=2_000,
                    help="patients in the trial, both arms (full workload: 100000)")
    ap.add_argument("--piece", type=int, default=5_000,
                    help="patients per ketasim.simulate call (per arm)")
    ap.add_argument("--chunk", type=int, default=None,
                    help="the runner's chunk_subjects (default: the runner's choice)")
    ap.add_argument("--whole", action="store_true",
                    help="one ketasim.simulate call for the whole trial (readouts in memory)")
    ap.add_argument("--ref-patients", type=int, default=20)
    ap.add_argument("--ref-repeats", type=int, default=3,
                    help="passes over the reference sample; each patient's best time counts")
    ap.add_argument("--ref-method", default="auto", choices=["auto", "LSODA", "BDF"])
    ap.add_argument("--rtol", type=float, default=DEFAULT_RTOL)
    ap.add_argument("--atol", type=float, default=DEFAULT_ATOL)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--out", type=Path, default=None,
                    help="Parquet file of the readouts (default: a temporary file)")
    args = ap.parse_args(argv)
    if args.patients < 2 or args.piece < 1 or args.ref_patients < 2:
        ap.error("--patients and --ref-patients must be >= 2, --piece >= 1")
    wall0 = time.perf_counter()
    registry = load_registry()
    sizes = arm_sizes(args.patients)
    pw = args.patients * TRIAL_WEEKS
    print(f"workload: {args.patients:,} patients ({sizes['placebo']:,} placebo, "
          f"{sizes['ketamine']:,} ketamine 0.5 mg/kg iv over 40 min on days "
          f"{', '.join(map(str, DOSE_DAYS))}), major_depression from day -60, MADRS on days "
          f"{', '.join(map(str, VISIT_DAYS))}: {pw:,} patient-weeks; rtol {args.rtol:g}, "
          f"atol {args.atol:g}; {numba.get_num_threads()} numba threads, "
          f"{os.cpu_count()} cores", flush=True)

    # ---- ketasim: first call (compile or cache load), then the whole trial
    t = time.perf_counter()
    ketasim.simulate(trial_scenario({"placebo": 1, "ketamine": 1}, 0), registry=registry)
    first_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="bench_trial-") as tmp:
        path = args.out or Path(tmp) / "readouts.parquet"
        mode = "one ketasim.simulate call" if args.whole else \
            f"pieces of {args.piece:,} patients per arm"
        print(f"ketasim: {mode}, chunk_subjects {args.chunk or 'default'}, "
              f"readouts to {path}", flush=True)
        ks_s, rows = run_trial(args, registry, path,
                               progress=lambda line: print(line, flush=True))
        trial_rss = peak_rss_mb()
        size_mb = path.stat().st_size / 2**20
        print(f"ketasim: {ks_s:.1f} s for {args.patients:,} patients "
              f"({1e3 * ks_s / args.patients:.2f} ms/patient), {pw / ks_s:,.0f} "
              f"patient-weeks/s; first call (compile or cache load) {first_s:.1f} s; "
              f"{rows:,} readout rows, Parquet {size_mb:.1f} MB; peak RSS {trial_rss:.0f} MB "
              f"(target < 2048 MB)", flush=True)

        # ---- reference sample: piece 0 of each arm
        seed0 = piece_seed(args.seed, 0)
        per_arm = {"placebo": max(1, args.ref_patients // 2)}
        per_arm["ketamine"] = max(1, args.ref_patients - per_arm["placebo"])
        samples = {a: Sample(a, n if args.whole else min(args.piece, n),
                             min(per_arm[a], n), seed0, registry)
                   for a, n in sizes.items()}
        grid = samples["ketamine"].grid
        ref = Reference(grid)
        method, tried = choose_method(ref, samples["ketamine"], args)
        print(f"reference: scipy solve_ivp {method} on the generated numba rhs and "
              f"Jacobian, one patient at a time"
              + ("; first patient " + ", ".join(f"{m} {1e3 * s:.1f} ms"
                                                for m, s in tried.items()) if tried else ""),
              flush=True)
        ref_s = ks_sig_s = 0.0
        ref_vals, ks_vals = {}, {}
        for a, s in samples.items():
            # each patient's best of --ref-repeats passes (both sides of the signalling
            # ratio likewise): over the few seconds the sample takes, its time swings with
            # other processes' load (19 to 35 ms a patient on this machine, which made one
            # single-pass run read 49.9x)
            best = np.full(s.n, np.inf)
            for _ in range(args.ref_repeats):
                vals = []
                for i in range(s.n):
                    t = time.perf_counter()
                    vals.append(ref.patient(s.pvec[i], s.events, i, method, args.rtol,
                                            args.atol))
                    best[i] = min(best[i], time.perf_counter() - t)
            ref_vals[a] = np.stack(vals)
            ref_s += best.mean() * sizes[a]
            sig = np.inf
            for _ in range(args.ref_repeats):
                t = time.perf_counter()
                r = simulate_signaling(s.cohort, s.events, s.grid, OUTPUTS, rtol=args.rtol,
                                       atol=args.atol)
                sig = min(sig, time.perf_counter() - t)
            ks_sig_s += sig / s.n * sizes[a]
            ks_vals[a] = r.values
        n_ref = sum(s.n for s in samples.values())
        print(f"reference: {ref_s:.1f} s for {args.patients:,} patients "
              f"({1e3 * ref_s / args.patients:.2f} ms/patient; timed {n_ref}, each its "
              f"best of {args.ref_repeats}, extrapolated per arm), "
              f"{pw / ref_s:,.0f} patient-weeks/s; ketasim's "
              f"signalling alone on the sample {1e3 * ks_sig_s / args.patients:.2f} "
              f"ms/patient (ratio {ref_s / ks_sig_s:.1f})", flush=True)

        # ---- accuracy
        visit = np.searchsorted(grid, samples["ketamine"].at)
        allref = np.concatenate(list(ref_vals.values()))
        scale = np.maximum(np.abs(allref).max(axis=(0, 1)), 1e-300)
        errs = np.max([np.abs(ks_vals[a][:, visit] - ref_vals[a][:, visit]).max(axis=(0, 1))
                       for a in samples], axis=0) / scale
        p = ClinicalParams.from_registry(registry)
        lat_err, same, total = 0.0, 0, 0
        table = pq.read_table(path, filters=[("piece", "=", 0), ("readout", "=",
                                                                  "madrs_total")],
                              columns=["arm", "subject", "time_h", "value"]).to_pandas()
        for a, s in samples.items():
            lat_ks, _ = madrs_latent(s.context(ks_vals[a], registry), s.at, p)
            lat_ref, _ = madrs_latent(s.context(ref_vals[a], registry), s.at, p)
            lat_err = max(lat_err, float(np.max(np.abs(lat_ks - lat_ref) / np.abs(lat_ref))))
            rated = MADRS_ASSAY.measure(s.context(ref_vals[a], registry), s.at)
            mine = rated.readout == "madrs_total"
            ours = (table[(table.arm == a) & table.subject.isin(s.subjects)]
                    .sort_values(["subject", "time_h"]).value.to_numpy())
            same += int(np.sum(rated.value[mine] == ours))
            total += int(mine.sum())
        print("accuracy, ketasim vs reference at the visits (max |difference| / output's max):"
              + "".join(f" {o} {e:.1e}" for o, e in zip(OUTPUTS, errs))
              + f"; MADRS latent (relative) {lat_err:.1e}; MADRS totals rated from the "
              f"reference identical to ketasim's: {same} of {total}")
        tight_ks, tight_ref = [], []
        for a, s in samples.items():
            tight = ref.patient(s.pvec[0], s.events, 0, "LSODA", 1e-10, 1e-14)[visit]
            tight_ks.append(np.abs(ks_vals[a][0, visit] - tight).max(axis=0) / scale)
            tight_ref.append(np.abs(ref_vals[a][0, visit] - tight).max(axis=0) / scale)
        print(f"accuracy vs tight LSODA (rtol 1e-10) on one patient per arm, max over outputs:"
              f" ketasim {np.max(tight_ks):.1e}, reference ({method}) {np.max(tight_ref):.1e}")
    print(f"peak RSS {peak_rss_mb():.0f} MB (after the trial: {trial_rss:.0f} MB); "
          f"wall {time.perf_counter() - wall0:.1f} s")
    ratio = ref_s / ks_s
    print(f"speedup: {ratio:.1f}")
    return ratio


if __name__ == "__main__":
    main(sys.argv[1:])
