# Template of the batched integration kernels. Not imported directly: codegen.py appends
# it to _generated.py after the generated rhs/outputs/jac/solve_lin, so that numba's
# on-disk cache is invalidated whenever the model changes (numba does not track changes
# in called functions defined in other modules). Documentation: see solver.py.
# error_model="numpy": IEEE division (see codegen._JIT); a step whose error estimate is
# not finite is rejected and shortened, and one still not finite at a step below 1e-12 h
# ends the subject with STATUS_NOT_FINITE.
# ruff: noqa

EV_ADD_STATE = 0
EV_ADD_PARAM = 1
EV_SET_PARAM = 2

STATUS_OK = 0
STATUS_TOO_MANY_STEPS = 1
STATUS_STEP_TOO_SMALL = 2
STATUS_NOT_FINITE = 3

METHOD_DP5 = 0
METHOD_ROS3 = 1
METHOD_AUTO = 2
METHOD_RODAS = 3
METHOD_AUTO_RODAS = 4

# stiffness switching thresholds on rho * h (rho: spectral radius of the Jacobian; DP5's
# real stability interval ends near 3.3)
_TO_ROS3 = 3.3
_TO_DP5 = 2.5

# Dormand-Prince 5(4) with SciPy's RK45 dense-output matrix
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

# ROS3: 3-stage, order 3(2), L-stable Rosenbrock method (Sandu et al. 1997, Atmos Environ
# 31:3459, as in KPP). Stage 3 reuses stage 2's function value (a31 = a21, a32 = 0).
_R_GAMMA = 0.43586652150845899941601945119356
_R_A21 = 1.0
_R_C21 = -1.0156171083877702091975600115545
_R_C31 = 4.0759956452537699824805835358067
_R_C32 = 9.2076794298330791242156818474003
_R_M1 = 1.0
_R_M2 = 6.1697947043828245592553615689730
_R_M3 = -0.42772256543218573326238373806514
_R_E1 = 0.5
_R_E2 = -2.9079558716805469821718236208017
_R_E3 = 0.22354069897811569627360909276199


# RODAS: 6-stage, order 4(3), stiffly accurate Rosenbrock method with a 3rd-order dense
# output (Hairer & Wanner 1996, Solving ODEs II, sections IV.7 and VI.3; coefficients of
# their Fortran code RODAS, METH=1, as distributed with Assimulo 3.0)
_RD_GAMMA = 0.25
_RD_C2, _RD_C3, _RD_C4 = 0.386, 0.21, 0.63
_RD_A21 = 0.1544000000000000e+01
_RD_A31, _RD_A32 = 0.9466785280815826e+00, 0.2557011698983284e+00
_RD_A41, _RD_A42, _RD_A43 = (0.3314825187068521e+01, 0.2896124015972201e+01,
                             0.9986419139977817e+00)
_RD_A51, _RD_A52, _RD_A53, _RD_A54 = (0.1221224509226641e+01, 0.6019134481288629e+01,
                                      0.1253708332932087e+02, -0.6878860361058950e+00)
_RD_C21 = -0.5668800000000000e+01
_RD_C31, _RD_C32 = -0.2430093356833875e+01, -0.2063599157091915e+00
_RD_C41, _RD_C42, _RD_C43 = (-0.1073529058151375e+00, -0.9594562251023355e+01,
                             -0.2047028614809616e+02)
_RD_C51, _RD_C52, _RD_C53, _RD_C54 = (0.7496443313967647e+01, -0.1024680431464352e+02,
                                      -0.3399990352819905e+02, 0.1170890893206160e+02)
_RD_C61, _RD_C62, _RD_C63, _RD_C64, _RD_C65 = (
    0.8083246795921522e+01, -0.7981132988064893e+01, -0.3152159432874371e+02,
    0.1631930543123136e+02, -0.6058818238834054e+01)
_RD_D2 = np.array([0.1012623508344586e+02, -0.7487995877610167e+01,
                   -0.3480091861555747e+02, -0.7992771707568823e+01,
                   0.1025137723295662e+01])
_RD_D3 = np.array([-0.6762803392801253e+00, 0.6087714651680015e+01,
                   0.1643084320892478e+02, 0.2476722511418386e+02,
                   -0.6594389125716872e+01])


@numba.njit(cache=True, error_model="numpy")
def _record(y, p, o_full, out_sel, out, i_out):
    if out_sel.shape[0] == 0:  # every output, in order: straight into the result row
        outputs(y, p, out[i_out])
        return
    outputs_sel(y, p, out_sel, o_full, out[i_out])  # the kept outputs only


@numba.njit(cache=True, error_model="numpy")
def _dp5_dense(y, K, h, x, y_out):
    """DP5 4th-order dense output at theta = x: the seven weights as scalars (no
    temporary array), then one pass over the states."""
    x2 = x * x
    x3 = x2 * x
    x4 = x3 * x
    w0 = h * (_P[0, 0] * x + _P[0, 1] * x2 + _P[0, 2] * x3 + _P[0, 3] * x4)
    w2 = h * (_P[2, 0] * x + _P[2, 1] * x2 + _P[2, 2] * x3 + _P[2, 3] * x4)
    w3 = h * (_P[3, 0] * x + _P[3, 1] * x2 + _P[3, 2] * x3 + _P[3, 3] * x4)
    w4 = h * (_P[4, 0] * x + _P[4, 1] * x2 + _P[4, 2] * x3 + _P[4, 3] * x4)
    w5 = h * (_P[5, 0] * x + _P[5, 1] * x2 + _P[5, 2] * x3 + _P[5, 3] * x4)
    w6 = h * (_P[6, 0] * x + _P[6, 1] * x2 + _P[6, 2] * x3 + _P[6, 3] * x4)
    for i in range(y.shape[0]):  # row 1 of P is zero (Dormand-Prince stage 2)
        y_out[i] = (y[i] + w0 * K[0, i] + w2 * K[2, i] + w3 * K[3, i] + w4 * K[4, i]
                    + w5 * K[5, i] + w6 * K[6, i])


@numba.njit(cache=True, error_model="numpy")
def _err_norm(err, y, y_new, rtol, atol):
    n = y.shape[0]
    acc = 0.0
    for i in range(n):
        sc = atol + max(abs(y[i]), abs(y_new[i])) * rtol
        acc += (err[i] / sc) ** 2
    return np.sqrt(acc / n)


@numba.njit(cache=True, error_model="numpy")
def _initial_step(y, f0, rtol, atol, h_max):
    n = y.shape[0]
    d0 = 0.0
    d1 = 0.0
    for i in range(n):
        sc = atol + abs(y[i]) * rtol
        d0 += (y[i] / sc) ** 2
        d1 += (f0[i] / sc) ** 2
    d0 = np.sqrt(d0 / n)
    d1 = np.sqrt(d1 / n)
    if d0 < 1e-5 or d1 < 1e-5:
        h = 1e-4
    else:
        h = 0.01 * d0 / d1
    return min(h, 0.05, h_max)


@numba.njit(cache=True, error_model="numpy")
def _spectral_radius(J):
    """Largest |eigenvalue| of the block lower-triangular Jacobian: the eigenvalues are
    those of its diagonal blocks (exact for blocks of one or two states; for a three-state
    star, exact while the second leaf is uncoupled, else a Gershgorin bound)."""
    rho = 0.0
    for b in range(BLOCKS.shape[0]):
        i = BLOCKS[b, 0]
        m = BLOCKS[b, 1]
        k = BLOCKS[b, 2]
        a = J[DIAG[i]] if DIAG[i] >= 0 else 0.0
        if m < 0:
            lam = abs(a)
        else:
            d = J[DIAG[m]] if DIAG[m] >= 0 else 0.0
            bb = J[BLOCK_UP[b]] if BLOCK_UP[b] >= 0 else 0.0
            cc = J[BLOCK_LO[b]] if BLOCK_LO[b] >= 0 else 0.0
            b2 = J[BLOCK_UP2[b]] if k >= 0 and BLOCK_UP2[b] >= 0 else 0.0
            c2 = J[BLOCK_LO2[b]] if k >= 0 and BLOCK_LO2[b] >= 0 else 0.0
            e = J[DIAG[k]] if k >= 0 and DIAG[k] >= 0 else 0.0
            if b2 == 0.0 and c2 == 0.0:
                tr = a + d
                det = a * d - bb * cc
                disc = tr * tr / 4.0 - det
                if disc >= 0.0:
                    r = np.sqrt(disc)
                    lam = max(abs(tr / 2.0 + r), abs(tr / 2.0 - r))
                else:
                    lam = np.sqrt(max(det, 0.0))
                lam = max(lam, abs(e))
            else:
                lam = max(abs(a) + abs(bb) + abs(b2), abs(cc) + abs(d), abs(c2) + abs(e))
        if lam > rho:
            rho = lam
    return rho


@numba.njit(cache=True, error_model="numpy")
def _segment(y, p, t, t_end, h, out_times, i_out, out_sel, rtol, atol, h_max,
             max_steps, n_steps, out, K, y_new, y_tmp, o_full, method):
    """Integrate one segment (no event inside) with DP5, ROS3, or (METHOD_AUTO) switching
    per step between DP5 (non-stiff stretches, e.g. absorption) and ROS3 (stiff,
    quiescent stretches) on the exact spectral radius of the Jacobian, as LSODA does
    with Adams/BDF."""
    n = y.shape[0]
    n_out = out_times.shape[0]
    J = np.empty(N_JAC)
    Dp = np.empty(n)
    err_v = np.empty(n)
    rodas = method == METHOD_RODAS or method == METHOD_AUTO_RODAS
    ak = np.empty((6 if rodas else 0, n))  # RODAS stages
    cd = np.empty((2 if rodas else 0, n))  # RODAS dense-output coefficients
    rhs(t, y, p, K[0])
    if h == 0.0:
        h = _initial_step(y, K[0], rtol, atol, h_max)
    jac(y, p, J)
    rho = _spectral_radius(J)
    switching = method == METHOD_AUTO or method == METHOD_AUTO_RODAS
    if switching:
        stiff = rho * h > _TO_ROS3
    else:
        stiff = method == METHOD_ROS3 or method == METHOD_RODAS
    n_since_jac = 0
    while t < t_end and i_out < n_out:
        if n_steps >= max_steps:
            return STATUS_TOO_MANY_STEPS, t, i_out, n_steps, h
        last = False
        if t + h >= t_end or (t_end - t - h) < 1e-12 * max(1.0, abs(t_end)):
            h = t_end - t
            last = True
        if stiff and rodas:
            inv_gh = 1.0 / (_RD_GAMMA * h)
            prep_lin(J, inv_gh, Dp)
            f1 = K[1]
            b = K[5]
            solve_lin(J, inv_gh, Dp, K[0], ak[0])
            for i in range(n):
                y_tmp[i] = y[i] + _RD_A21 * ak[0, i]
            rhs(t + _RD_C2 * h, y_tmp, p, f1)
            for i in range(n):
                b[i] = f1[i] + (_RD_C21 / h) * ak[0, i]
            solve_lin(J, inv_gh, Dp, b, ak[1])
            for i in range(n):
                y_tmp[i] = y[i] + _RD_A31 * ak[0, i] + _RD_A32 * ak[1, i]
            rhs(t + _RD_C3 * h, y_tmp, p, f1)
            for i in range(n):
                b[i] = f1[i] + (_RD_C31 * ak[0, i] + _RD_C32 * ak[1, i]) / h
            solve_lin(J, inv_gh, Dp, b, ak[2])
            for i in range(n):
                y_tmp[i] = y[i] + _RD_A41 * ak[0, i] + _RD_A42 * ak[1, i] + _RD_A43 * ak[2, i]
            rhs(t + _RD_C4 * h, y_tmp, p, f1)
            for i in range(n):
                b[i] = f1[i] + (_RD_C41 * ak[0, i] + _RD_C42 * ak[1, i]
                                + _RD_C43 * ak[2, i]) / h
            solve_lin(J, inv_gh, Dp, b, ak[3])
            for i in range(n):
                y_tmp[i] = (y[i] + _RD_A51 * ak[0, i] + _RD_A52 * ak[1, i]
                            + _RD_A53 * ak[2, i] + _RD_A54 * ak[3, i])
            rhs(t + h, y_tmp, p, f1)
            for i in range(n):
                b[i] = f1[i] + (_RD_C51 * ak[0, i] + _RD_C52 * ak[1, i] + _RD_C53 * ak[2, i]
                                + _RD_C54 * ak[3, i]) / h
            solve_lin(J, inv_gh, Dp, b, ak[4])
            for i in range(n):
                y_tmp[i] += ak[4, i]  # the embedded (3rd-order) solution
            rhs(t + h, y_tmp, p, f1)
            for i in range(n):
                b[i] = f1[i] + (_RD_C61 * ak[0, i] + _RD_C62 * ak[1, i] + _RD_C63 * ak[2, i]
                                + _RD_C64 * ak[3, i] + _RD_C65 * ak[4, i]) / h
            solve_lin(J, inv_gh, Dp, b, ak[5])
            for i in range(n):
                y_new[i] = y_tmp[i] + ak[5, i]
                err_v[i] = ak[5, i]
            order_exp = -0.25
            max_fac = 6.0
        elif stiff:
            inv_gh = 1.0 / (_R_GAMMA * h)
            prep_lin(J, inv_gh, Dp)
            k1 = K[2]
            k2 = K[3]
            k3 = K[4]
            b = K[5]
            f1 = K[1]
            solve_lin(J, inv_gh, Dp, K[0], k1)
            for i in range(n):
                y_tmp[i] = y[i] + _R_A21 * k1[i]
            rhs(t + _R_GAMMA * h, y_tmp, p, f1)
            for i in range(n):
                b[i] = f1[i] + (_R_C21 / h) * k1[i]
            solve_lin(J, inv_gh, Dp, b, k2)
            for i in range(n):
                b[i] = f1[i] + (_R_C31 * k1[i] + _R_C32 * k2[i]) / h
            solve_lin(J, inv_gh, Dp, b, k3)
            for i in range(n):
                y_new[i] = y[i] + _R_M1 * k1[i] + _R_M2 * k2[i] + _R_M3 * k3[i]
                err_v[i] = _R_E1 * k1[i] + _R_E2 * k2[i] + _R_E3 * k3[i]
            order_exp = -1.0 / 3.0
            max_fac = 6.0
        else:
            for s in range(1, 6):
                for i in range(n):
                    acc = 0.0
                    for r in range(s):
                        acc += _A[s, r] * K[r, i]
                    y_tmp[i] = y[i] + h * acc
                rhs(t + _C[s] * h, y_tmp, p, K[s])
            for i in range(n):
                acc = 0.0
                for r in range(6):
                    acc += _B[r] * K[r, i]
                y_new[i] = y[i] + h * acc
            rhs(t + h, y_new, p, K[6])
            for i in range(n):
                e = 0.0
                for r in range(7):
                    e += _E[r] * K[r, i]
                err_v[i] = h * e
            order_exp = -0.2
            max_fac = 10.0
        err = _err_norm(err_v, y, y_new, rtol, atol)
        n_steps += 1
        if not np.isfinite(err):
            # a trial step too long for the model (e.g. the first step after an event
            # in a quiescent stretch, where a stage's state leaves the domain of a
            # non-integer power) is rejected and shortened; a state that stays
            # non-finite at any step ends the subject
            h = h * 0.2
            if h < 1e-12:
                return STATUS_NOT_FINITE, t, i_out, n_steps, h
            continue
        if err <= 1.0:
            t_new = t_end if last else t + h
            if stiff and rodas and i_out < n_out and out_times[i_out] < t_new:
                for i in range(n):  # dense output, before the stages are overwritten
                    c2 = 0.0
                    c3 = 0.0
                    for r in range(5):
                        c2 += _RD_D2[r] * ak[r, i]
                        c3 += _RD_D3[r] * ak[r, i]
                    cd[0, i] = c2
                    cd[1, i] = c3
            if stiff:  # a Rosenbrock step needs the Jacobian: with f at the new point
                rhs_jac(t_new, y_new, p, K[6], J)
            while i_out < n_out and (out_times[i_out] < t_new
                                     or (out_times[i_out] == t_new and not last)):
                if out_times[i_out] == t_new:
                    _record(y_new, p, o_full, out_sel, out, i_out)
                else:
                    x = (out_times[i_out] - t) / h
                    if stiff and rodas:
                        for i in range(n):
                            y_tmp[i] = y[i] * (1.0 - x) + x * (
                                y_new[i] + (1.0 - x) * (cd[0, i] + x * cd[1, i]))
                    elif stiff:
                        h00 = (1.0 + 2.0 * x) * (1.0 - x) * (1.0 - x)
                        h10 = x * (1.0 - x) * (1.0 - x)
                        h01 = x * x * (3.0 - 2.0 * x)
                        h11 = x * x * (x - 1.0)
                        for i in range(n):
                            y_tmp[i] = (h00 * y[i] + h10 * h * K[0, i] + h01 * y_new[i]
                                        + h11 * h * K[6, i])
                    else:
                        _dp5_dense(y, K, h, x, y_tmp)
                    _record(y_tmp, p, o_full, out_sel, out, i_out)
                i_out += 1
            t = t_new
            for i in range(n):
                y[i] = y_new[i]
                K[0, i] = K[6, i]
            fac = max_fac if err == 0.0 else min(max_fac, 0.9 * err ** order_exp)
            h = min(h * max(fac, 0.2), h_max)
            n_since_jac += 1
            if stiff or (switching and n_since_jac >= 5):
                if not stiff:  # a stiff step has it already (rhs_jac above)
                    jac(y, p, J)
                rho = _spectral_radius(J)
                n_since_jac = 0
                if switching and stiff and rho * h < _TO_DP5:
                    stiff = False
                elif switching and (not stiff) and rho * h > _TO_ROS3:
                    stiff = True
        else:
            h = h * max(0.2, 0.9 * err ** order_exp)
            if h < 1e-12:
                return STATUS_STEP_TOO_SMALL, t, i_out, n_steps, h
            if switching and (not stiff) and rho * h > _TO_ROS3:
                stiff = True
    return STATUS_OK, t, i_out, n_steps, h


@numba.njit(cache=True, error_model="numpy")
def _integrate_one(y, p, t_start, ev_times, ev_kind, ev_index, ev_value, out_times,
                   out_sel, rtol, atol, h_max, max_steps, method, out):
    """Integrate one subject in place; returns (status, n_steps)."""
    n = y.shape[0]
    K = np.empty((7, n))
    y_new = np.empty(n)
    y_tmp = np.empty(n)
    o_full = np.empty(N_OUTPUTS)
    n_out = out_times.shape[0]
    n_ev = ev_times.shape[0]
    t = t_start
    i_out = 0
    i_ev = 0
    n_steps = 0
    while i_out < n_out and out_times[i_out] < t:  # before the start: the start state
        _record(y, p, o_full, out_sel, out, i_out)
        i_out += 1
    h = 0.0
    while True:
        while i_ev < n_ev and ev_times[i_ev] <= t:
            k = ev_kind[i_ev]
            idx = ev_index[i_ev]
            v = ev_value[i_ev]
            if k == EV_ADD_STATE:
                y[idx] += v
            elif k == EV_ADD_PARAM:
                p[idx] += v
            else:
                p[idx] = v
            i_ev += 1
            h = 0.0  # restart step-size selection after a discontinuity
        while i_out < n_out and out_times[i_out] <= t:  # outputs at t, after events
            _record(y, p, o_full, out_sel, out, i_out)
            i_out += 1
        if i_out >= n_out:
            return STATUS_OK, n_steps
        # a segment ends at the next event; after the last event it runs until the
        # outputs are done, with no step shortened to land on the last output time, so
        # the steps (and every output) do not depend on how far the outputs reach
        t_end = np.inf
        if i_ev < n_ev:
            t_end = ev_times[i_ev]
        st, t, i_out, n_steps, h = _segment(
            y, p, t, t_end, h, out_times, i_out, out_sel, rtol, atol, h_max, max_steps,
            n_steps, out, K, y_new, y_tmp, o_full, method)
        if st != STATUS_OK:
            return st, n_steps


@numba.njit(parallel=True, cache=True, error_model="numpy")
def integrate_batch(y0, pvec, t_start, ev_times, ev_kind, ev_index, ev_value, out_times,
                    out_sel, rtol, atol, h_max, max_steps, method, out):
    """Integrate all subjects into ``out[n_sub, n_times, n_sel]`` (caller-allocated, so a
    buffer can be reused across chunks); returns (status, steps). ``out_sel`` holds the
    indices of the outputs to keep; empty means every output, in order."""
    n_sub = y0.shape[0]
    status = np.zeros(n_sub, dtype=np.int64)
    steps = np.zeros(n_sub, dtype=np.int64)
    for s in numba.prange(n_sub):
        y = y0[s].copy()
        p = np.empty(N_PTOTAL)
        p[:pvec.shape[1]] = pvec[s]
        derive(p)
        st, ns = _integrate_one(y, p, t_start, ev_times, ev_kind, ev_index, ev_value[s],
                                out_times, out_sel, rtol, atol, h_max, max_steps, method,
                                out[s])
        status[s] = st
        steps[s] = ns
    return status, steps
