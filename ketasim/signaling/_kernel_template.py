# Template of the batched DP5(4) kernel. Not imported directly: codegen.py appends it to
# _generated.py after the generated rhs/outputs, so that numba's on-disk cache is
# invalidated whenever the model changes (numba does not track changes in called
# functions defined in other modules). Documentation: see solver.py.
# ruff: noqa
EV_ADD_STATE = 0
EV_ADD_PARAM = 1
EV_SET_PARAM = 2

STATUS_OK = 0
STATUS_TOO_MANY_STEPS = 1
STATUS_STEP_TOO_SMALL = 2

_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0])
_A = np.array([
    [0, 0, 0, 0, 0],
    [1 / 5, 0, 0, 0, 0],
    [3 / 40, 9 / 40, 0, 0, 0],
    [44 / 45, -56 / 15, 32 / 9, 0, 0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
])
_B = np.array([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84])
_E = np.array([-71 / 57600, 0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40])
_P = np.array([
    [1, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
    [0, 0, 0, 0],
    [0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
    [0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
    [0, 127303824393 / 49829197408, -318862633887 / 49829197408,
     701980252875 / 199316789632],
    [0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
    [0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
])


@numba.njit(cache=True)
def _integrate_one(y, p, t_start, ev_times, ev_kind, ev_index, ev_value, out_times,
                   out_sel, rtol, atol, h_max, max_steps, out):
    """Integrate one subject in place; returns (status, n_steps)."""
    n = y.shape[0]
    K = np.empty((7, n))
    y_new = np.empty(n)
    y_tmp = np.empty(n)
    o_full = np.empty(N_OUTPUTS)
    n_out = out_times.shape[0]
    n_ev = ev_times.shape[0]
    C = _C
    A = _A
    B = _B
    E = _E
    P = _P
    t = t_start
    i_out = 0
    i_ev = 0
    n_steps = 0
    # outputs before the start are reported at the start state
    while i_out < n_out and out_times[i_out] < t:
        outputs(y, p, o_full)
        for j in range(out_sel.shape[0]):
            out[i_out, j] = o_full[out_sel[j]]
        i_out += 1
    t_final = out_times[n_out - 1] if n_out > 0 else t
    h = 0.0
    while True:
        # apply all events at the current time
        while i_ev < n_ev and ev_times[i_ev] <= t:
            k = ev_kind[i_ev]
            idx = ev_index[i_ev]
            v = ev_value[i_ev]
            if k == 0:
                y[idx] += v
            elif k == 1:
                p[idx] += v
            else:
                p[idx] = v
            i_ev += 1
            h = 0.0  # restart step-size selection after a discontinuity
        # outputs exactly at t (after events)
        while i_out < n_out and out_times[i_out] <= t:
            outputs(y, p, o_full)
            for j in range(out_sel.shape[0]):
                out[i_out, j] = o_full[out_sel[j]]
            i_out += 1
        if i_out >= n_out:
            return 0, n_steps
        t_end = t_final
        if i_ev < n_ev and ev_times[i_ev] < t_end:
            t_end = ev_times[i_ev]
        # ---- integrate from t to t_end with DP5(4)
        rhs(t, y, p, K[0])
        if h == 0.0:
            # initial step (Hairer's heuristic, simplified)
            d0 = 0.0
            d1 = 0.0
            for i in range(n):
                sc = atol + abs(y[i]) * rtol
                d0 += (y[i] / sc) ** 2
                d1 += (K[0, i] / sc) ** 2
            d0 = np.sqrt(d0 / n)
            d1 = np.sqrt(d1 / n)
            if d0 < 1e-5 or d1 < 1e-5:
                h = 1e-4
            else:
                h = 0.01 * d0 / d1
            h = min(h, 0.05, h_max)
        while t < t_end:
            if n_steps >= max_steps:
                return 1, n_steps
            last = False
            if t + h >= t_end or (t_end - t - h) < 1e-12 * max(1.0, abs(t_end)):
                h = t_end - t
                last = True
            # stages
            for s in range(1, 6):
                for i in range(n):
                    acc = 0.0
                    for r in range(s):
                        acc += A[s, r] * K[r, i]
                    y_tmp[i] = y[i] + h * acc
                rhs(t + C[s] * h, y_tmp, p, K[s])
            for i in range(n):
                acc = 0.0
                for r in range(6):
                    acc += B[r] * K[r, i]
                y_new[i] = y[i] + h * acc
            rhs(t + h, y_new, p, K[6])
            err = 0.0
            for i in range(n):
                e = 0.0
                for r in range(7):
                    e += E[r] * K[r, i]
                e *= h
                sc = atol + max(abs(y[i]), abs(y_new[i])) * rtol
                err += (e / sc) ** 2
            err = np.sqrt(err / n)
            n_steps += 1
            if err <= 1.0:
                t_new = t_end if last else t + h
                # dense output for the requested times inside (t, t_new]
                while i_out < n_out and out_times[i_out] <= t_new:
                    if out_times[i_out] == t_new:
                        for i in range(n):
                            y_tmp[i] = y_new[i]
                    else:
                        x = (out_times[i_out] - t) / h
                        x2 = x * x
                        x3 = x2 * x
                        x4 = x3 * x
                        for i in range(n):
                            acc = 0.0
                            for r in range(7):
                                acc += K[r, i] * (P[r, 0] * x + P[r, 1] * x2 + P[r, 2] * x3
                                                  + P[r, 3] * x4)
                            y_tmp[i] = y[i] + h * acc
                    outputs(y_tmp, p, o_full)
                    for j in range(out_sel.shape[0]):
                        out[i_out, j] = o_full[out_sel[j]]
                    i_out += 1
                t = t_new
                for i in range(n):
                    y[i] = y_new[i]
                    K[0, i] = K[6, i]
                if err == 0.0:
                    fac = 10.0
                else:
                    fac = min(10.0, 0.9 * err ** -0.2)
                h = min(h * fac, h_max)
            else:
                h = h * max(0.2, 0.9 * err ** -0.2)
                if h < 1e-12:
                    return 2, n_steps
        if i_out >= n_out and i_ev >= n_ev:
            return 0, n_steps


@numba.njit(parallel=True, cache=True)
def integrate_batch(y0, pvec, t_start, ev_times, ev_kind, ev_index, ev_value, out_times,
                    out_sel, rtol, atol, h_max, max_steps):
    """Integrate all subjects; returns (outputs[n_sub, n_times, n_sel], status, steps)."""
    n_sub = y0.shape[0]
    out = np.empty((n_sub, out_times.shape[0], out_sel.shape[0]))
    status = np.zeros(n_sub, dtype=np.int64)
    steps = np.zeros(n_sub, dtype=np.int64)
    for s in numba.prange(n_sub):
        y = y0[s].copy()
        p = pvec[s].copy()
        st, ns = _integrate_one(y, p, t_start, ev_times, ev_kind, ev_index, ev_value[s],
                                out_times, out_sel, rtol, atol, h_max, max_steps, out[s])
        status[s] = st
        steps[s] = ns
    return out, status, steps

