"""Elementary functions for numba kernels that the compiler can vectorise.

numba lowers ``math.exp`` to a call into the C library, one element at a time, which
keeps a loop over the units of a population from being vectorised (the SVML vector
library is not available here). :func:`exp` computes the same function in straight-line
arithmetic instead: Cody-Waite range reduction by ln 2 (the split of fdlibm, exact for
the reduction's integer part), a degree-13 Taylor polynomial on |r| <= ln(2) / 2
(truncation below 1e-17 relative) and the power of two built in the exponent bits. It
agrees with the C library's ``exp`` to within one unit in the last place (tested).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic

_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # 0x3FE62E42FEE00000: trailing zeros, k * _LN2_HI is exact
_LN2_LO = 1.9082149292705877e-10
# beyond these the result over- or underflows: clamped so the exponent bits stay valid
# (exp(+-700) is 1e+-304: 1 + exp(-700) == 1, and a rate over 1 + exp(700) is 1e-304)
_X_MAX = 700.0
# 1/k! for k = 12 down to 0
_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(12, -1, -1))


@intrinsic
def _int64_bits_as_float64(typingctx, x):
    """Reinterpret the bits of an int64 as a float64 (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@numba.njit(inline="always")
def exp(x):
    """e**x for |x| <= 700 (clamped beyond; NaN stays NaN), within one unit in the last
    place of ``math.exp``, in arithmetic a loop can vectorise."""
    xc = min(max(x, -_X_MAX), _X_MAX)
    kf = math.floor(xc * _LOG2E + 0.5)
    r = xc - kf * _LN2_HI - kf * _LN2_LO
    # Horner, highest order first: 1/13! ... 1/2!, 1, 1
    p = 1.0 / 6227020800.0
    for c in _TAYLOR:
        p = c + r * p
    y = p * _int64_bits_as_float64((np.int64(kf) + 1023) << 52)
    return y if not math.isnan(x) else x
