"""Every hot elementwise or reduction kernel of tinyvae, twice.

Each kernel exists as

* a NumPy *twin* (``*_np``): the reference, a few lines that read like the equation, and
* a numba ``@njit(cache=True)`` loop (``*_nb``): the same formula, fused into one pass over
  memory, with no temporaries. (In float32 a few loops use the vectorizable exp and log1p
  defined below instead of the C library's; they agree with the twins to float32 rounding.)

The public functions (no suffix) choose one of the two by the backend, set with
``TINYVAE_BACKEND=numpy|numba`` (default numba) or :func:`set_backend`. Tests assert that the
two twins agree to 1e-12 in float64, including at extreme values (|a| = 1e4).

Everything lives in this one module on purpose: numba's on-disk cache is keyed by the file
that holds a kernel and does not notice edits in other modules. ``fastmath`` is off on every
kernel, because every kernel here sits on a gradient-checked path.

Activations are numbered so numba can branch on an integer (the constants RELU, ..., IDENTITY)::

    relu 0   leaky_relu 1   tanh 2   sigmoid 3   softplus 4   identity 5

Their derivatives are written in terms of the *output* h = f(a) (for example sigmoid' =
h (1 - h), softplus' = sigmoid(a) = 1 - exp(-h)), so a layer's backward pass only needs to keep
h, never the pre-activation a.
"""
import functools
import math
import os
import warnings

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.extending import intrinsic, overload

from .errors import TinyVAEError

# --------------------------------------------------------------------------------------------
# backend selection

BACKENDS = ("numba", "numpy")
_backend = os.environ.get("TINYVAE_BACKEND", "numba").strip().lower() or "numba"
BACKEND_ENV_ERROR = None        # the message for an invalid TINYVAE_BACKEND, else None
if _backend not in BACKENDS:
    # not an import-time crash: fall back to numba, warn, and keep the message for the CLI
    BACKEND_ENV_ERROR = (f"TINYVAE_BACKEND={os.environ['TINYVAE_BACKEND']!r} is not a backend: set it to "
                         f"one of {', '.join(BACKENDS)} (or unset it for numba)")
    warnings.warn(f"{BACKEND_ENV_ERROR}; using numba")
    _backend = "numba"


def set_backend(name):
    """Choose the kernel backend: ``"numba"`` (fast, default) or ``"numpy"`` (the reference).

    Returns the previous backend, so ``old = set_backend("numpy"); ...; set_backend(old)``."""
    global _backend
    name = str(name).strip().lower()
    if name not in BACKENDS:
        raise TinyVAEError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
    old, _backend = _backend, name
    return old


def get_backend():
    """The kernel backend in use: ``"numba"`` or ``"numpy"``."""
    return _backend


ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "softplus", "identity")
ACTIVATION_CODE = {name: code for code, name in enumerate(ACTIVATIONS)}
RELU, LEAKY_RELU, TANH, SIGMOID, SOFTPLUS, IDENTITY = (ACTIVATION_CODE[name] for name in ACTIVATIONS)
KINKED = ("relu", "leaky_relu")                 # a kink at a = 0: no derivative there
PIECEWISE_LINEAR = KINKED + ("identity",)       # f'' = 0 wherever it exists
LEAKY_SLOPE = 0.01  # leaky_relu(a) = a for a > 0, 0.01 a otherwise


def _no_twin_branch(function, kind):
    listed = " (it is listed in ACTIVATIONS: add its formula here)" if kind in ACTIVATIONS else ""
    return f"{function} has no branch for activation {kind!r}{listed}"


def activation_code(kind):
    """The integer code of an activation name; a clear error for an unknown name."""
    try:
        return ACTIVATION_CODE[kind]
    except (KeyError, TypeError):
        raise TinyVAEError(f"unknown activation {kind!r}: expected one of {', '.join(ACTIVATIONS)}") from None


# --------------------------------------------------------------------------------------------
# NumPy twins: scalar-free formulas. The activations and likelihoods are stable for |a| up to
# 1e4 (no overflow, no warnings); the reparameterization takes exp(logvar) as it is, so a
# logvar above 88 (float32) or 709 (float64) overflows to inf, with NumPy's warning (the numba
# kernels give the same inf without one).

def sigmoid_np(a):
    """sigma(a) = 1 / (1 + exp(-a)), computed through e = exp(-|a|) <= 1 so nothing overflows."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def softplus_np(a):
    """softplus(a) = log(1 + exp(a)) = max(a, 0) + log1p(exp(-|a|))."""
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def activation_np(a, kind):
    """h = f(a) for the named activation."""
    if kind == "relu":
        return np.maximum(a, 0)
    if kind == "leaky_relu":
        return np.where(a > 0, a, LEAKY_SLOPE * a)
    if kind == "tanh":
        return np.tanh(a)
    if kind == "sigmoid":
        return sigmoid_np(a)
    if kind == "softplus":
        return softplus_np(a)
    if kind == "identity":
        return a.copy()
    raise ValueError(_no_twin_branch("activation_np", kind))


def activation_deriv_np(h, kind):
    """f'(a), written through the output h = f(a)."""
    if kind == "relu":
        return (h > 0).astype(h.dtype)
    if kind == "leaky_relu":
        return np.where(h > 0, 1, LEAKY_SLOPE).astype(h.dtype)
    if kind == "tanh":
        return 1 - h * h                    # tanh' = 1 - tanh^2
    if kind == "sigmoid":
        return h * (1 - h)                  # sigma' = sigma (1 - sigma)
    if kind == "softplus":
        return -np.expm1(-h)                # softplus' = sigma(a) = 1 - exp(-softplus(a))
    if kind == "identity":
        return np.ones_like(h)
    raise ValueError(_no_twin_branch("activation_deriv_np", kind))


def activation_second_np(h, kind):
    """f''(a), written through the output h = f(a) (the contractive penalty needs it)."""
    if kind in PIECEWISE_LINEAR:
        return np.zeros_like(h)             # zero away from the kink
    if kind == "tanh":
        return -2 * h * (1 - h * h)         # d/da (1 - h^2) = -2 h h'
    if kind == "sigmoid":
        return h * (1 - h) * (1 - 2 * h)    # d/da h(1 - h) = h' (1 - 2h)
    if kind == "softplus":
        s = -np.expm1(-h)                   # s = sigma(a)
        return s * (1 - s)
    raise ValueError(_no_twin_branch("activation_second_np", kind))


def bias_activation_np(a, b, kind):
    """h = f(a + b): the bias add and the activation of a dense layer, a (N, F), b (F,)."""
    return activation_np(a + b, kind)


def activation_backward_np(dh, h, kind):
    """da = dh * f'(a) and db = sum_n da: the backward of ``bias_activation``."""
    da = dh * activation_deriv_np(h, kind)
    return da, da.sum(axis=0)


def bernoulli_nll_np(logits, x):
    """-log p(x | z) = sum_d softplus(l_d) - x_d l_d per example (rows), for logits l (N, D).

    With softplus(l) = max(l, 0) + log(1 + exp(-|l|)), the two large terms go first, so that
    for a confident, correct logit (x = 1, l = 20) the small log term survives: 2.1e-9, not 0."""
    l = logits
    return (np.maximum(l, 0) - x * l + np.log1p(np.exp(-np.abs(l)))).sum(axis=1, dtype=np.float64)


def bernoulli_nll_grad_np(logits, x, scale):
    """Per-example -log p(x|z) and scale * d/dl = scale * (sigma(l) - x)."""
    return bernoulli_nll_np(logits, x), scale * (sigmoid_np(logits) - x)


def gaussian_nll_np(mean, x, sigma2):
    """-log N(x; o, sigma2 I) = sum_d [ (x_d - o_d)^2 / (2 sigma2) + log(2 pi sigma2) / 2 ]
    = SSE / (2 sigma2) + (D / 2) log(2 pi sigma2), per row."""
    sigma2 = float(sigma2)
    half_log = mean.dtype.type(0.5 * np.log(2 * np.pi * sigma2))   # a constant, in the data's precision
    return ((x - mean) ** 2 / (2 * sigma2) + half_log).sum(axis=1, dtype=np.float64)


def gaussian_nll_grad_np(mean, x, sigma2, scale):
    """Per-example -log N(x; o, sigma2 I) and scale * d/do = scale * (o - x) / sigma2."""
    return gaussian_nll_np(mean, x, sigma2), scale * (mean - x) / float(sigma2)


def reparameterize_np(mu, logvar, eps):
    """z = mu + exp(logvar / 2) * eps and KL(N(mu, exp(logvar)) || N(0, I)) per example.

    KL = 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j)   (Kingma & Welling 2013, app. B).
    exp(lv) - 1 is computed as expm1(lv): near lv = 0, where a collapsed dimension sits, the
    three terms nearly cancel, and exp(lv) - 1 - lv in float32 can even come out negative."""
    z = mu + np.exp(0.5 * logvar) * eps
    kl = 0.5 * (mu**2 + np.expm1(logvar) - logvar).sum(axis=1, dtype=np.float64)
    return z, kl


def reparameterize_backward_np(dz, mu, logvar, eps, kl_scale):
    """Gradients of (loss through z) + kl_scale * KL with respect to mu and logvar.

    dz/dmu = 1, dz/dlogvar = eps * exp(logvar/2) / 2; dKL/dmu = mu, dKL/dlogvar = (exp(logvar) - 1) / 2."""
    dmu = dz + kl_scale * mu
    dlogvar = dz * eps * 0.5 * np.exp(0.5 * logvar) + kl_scale * 0.5 * np.expm1(logvar)
    return dmu, dlogvar


def adam_np(theta, g, m, v, lr, beta1, beta2, eps, t):
    """One Adam step (Kingma & Ba 2015, alg. 1), in place on theta, m, v; t counts from 1.

    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  theta <- theta - lr m_hat / (sqrt(v_hat) + eps)."""
    m[...] = beta1 * m + (1 - beta1) * g
    v[...] = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    theta[...] = theta - lr * m_hat / (np.sqrt(v_hat) + eps)


def sgd_np(theta, g, velocity, lr, momentum):
    """One SGD step with (heavy-ball) momentum, in place (Goodfellow et al. alg. 8.2, whose alpha
    is ``momentum``): first v <- momentum v - lr g, then theta <- theta + v."""
    velocity[...] = momentum * velocity - lr * g
    theta[...] = theta + velocity


# --------------------------------------------------------------------------------------------
# numba kernels: the same formulas as the twins above, one fused pass, no temporaries
#
# Every kernel is compiled with the options in JIT, set in this one place: cached on disk;
# NumPy's error model (a division by zero gives inf, as in NumPy, instead of raising, which is
# what lets LLVM turn loops that divide into SIMD code); fastmath off, because every kernel
# sits on a gradient-checked path; nogil, so a kernel releases Python's interpreter lock and
# a caller's own threads can run kernels side by side. Constants are made in the arrays' own
# precision (``real = a.dtype.type``) so float32 kernels compute in float32, as the twins do;
# the per-example sums over a row (the NLLs, the KL) accumulate in float64 in both, so that
# 784 terms added one after another lose nothing worth a printed digit (one exception: the
# training step's Bernoulli loss, see ``bernoulli_nll_grad``).

JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)


def _cache_probe(x):
    return x


def _disk_cache_available():
    """numba keeps compiled kernels beside this file (__pycache__), in $NUMBA_CACHE_DIR or in
    ~/.cache; where none is writable (a read-only install and no home), cache=True fails as a
    kernel is decorated. Then tinyvae compiles anew in every process, and says so once."""
    try:
        njit(cache=True)(_cache_probe)
        return True
    except RuntimeError:
        return False


if not _disk_cache_available():
    JIT["cache"] = False
    _where = (f"NUMBA_CACHE_DIR={os.environ['NUMBA_CACHE_DIR']} is not writable" if os.environ.get("NUMBA_CACHE_DIR")
              else "its install folder is read-only and there is no writable ~/.cache")
    warnings.warn(f"numba has nowhere to cache tinyvae's compiled kernels ({_where}): each run compiles them "
                  "anew, 7-20 s. Set NUMBA_CACHE_DIR to a writable folder to keep them")


def exp_nonpositive(x):
    """exp(x) for x <= 0, a number in (0, 1]. Compiled: libm's exp for float64; for float32,
    a polynomial that LLVM can vectorize (below)."""
    return math.exp(x)


def log1p_unit(e):
    """log(1 + e) for e in [0, 1]. Compiled: libm's log1p for float64; for float32, a series
    that LLVM can vectorize (below)."""
    return math.log1p(e)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bit pattern is the int32 ``bits`` (a C union, in LLVM)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.FloatType())
    return types.float32(types.int32), codegen


@overload(exp_nonpositive, jit_options=JIT)
def _exp_nonpositive(x):
    if x != types.float32:
        return lambda x: math.exp(x)

    def exp_float32(x):
        # exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln(2)/2, with ln 2 split in a short
        # high part and a low part so n ln 2 is exact (Cody & Waite); exp(r) by its Taylor
        # polynomial to r^7 (truncation error < 6e-9, below float32's 6e-8 rounding); 2^n built
        # from its exponent bits. Below -87, just above where float32 turns subnormal (-87.34),
        # the result is flushed to 0; a NaN falls through the test and stays NaN.
        f = np.float32
        n = np.floor(x * f(1.4426950408889634) + f(0.5))
        r = (x - n * f(0.693359375)) - n * f(-2.12194440e-4)
        p = f(1 / 5040)
        p = p * r + f(1 / 720)
        p = p * r + f(1 / 120)
        p = p * r + f(1 / 24)
        p = p * r + f(1 / 6)
        p = p * r + f(1 / 2)
        p = p * r + f(1)
        p = p * r + f(1)
        two_n = _float32_from_bits((np.int32(max(n, f(-126))) + np.int32(127)) << 23)
        return f(0) if x < f(-87) else p * two_n
    return exp_float32


@overload(log1p_unit, jit_options=JIT)
def _log1p_unit(e):
    if e != types.float32:
        return lambda e: math.log1p(e)

    def log1p_float32(e):
        # log(1 + e) = 2 atanh(t), t = e / (2 + e) in [0, 1/3]; atanh(t) = t + t^3/3 + t^5/5 + ...
        # to t^15/15: truncation error about 1e-9 at most (at e = 1), under float32's rounding.
        f = np.float32
        t = e / (f(2) + e)
        t2 = t * t
        q = f(1 / 15)
        q = q * t2 + f(1 / 13)
        q = q * t2 + f(1 / 11)
        q = q * t2 + f(1 / 9)
        q = q * t2 + f(1 / 7)
        q = q * t2 + f(1 / 5)
        q = q * t2 + f(1 / 3)
        q = q * t2 + f(1)
        return f(2) * t * q
    return log1p_float32


@njit(**JIT)
def _sigmoid(a):
    one = type(a)(1)
    e = exp_nonpositive(-abs(a))                # exp(-|a|) in (0, 1]: never overflows
    return (one if a >= 0 else e) / (one + e)


@njit(**JIT)
def _softplus(a):
    zero = type(a)(0)
    return max(a, zero) + log1p_unit(exp_nonpositive(-abs(a)))


@njit(**JIT)
def _act(a, code):
    zero = type(a)(0)
    if code == RELU:
        return zero if a <= zero else a          # max(a, 0); a NaN stays NaN, as in the twin
    if code == LEAKY_RELU:
        return a if a > zero else type(a)(LEAKY_SLOPE) * a
    if code == TANH:
        return math.tanh(a)
    if code == SIGMOID:
        return _sigmoid(a)
    if code == SOFTPLUS:
        return _softplus(a)
    return a                                     # IDENTITY (a new activation needs a branch above)


@njit(**JIT)
def _act_deriv(h, code):
    one, zero = type(h)(1), type(h)(0)
    if code == RELU:
        return one if h > zero else zero
    if code == LEAKY_RELU:
        return one if h > zero else type(h)(LEAKY_SLOPE)
    if code == TANH:
        return one - h * h
    if code == SIGMOID:
        return h * (one - h)
    if code == SOFTPLUS:
        return -math.expm1(-h)
    return one                                   # IDENTITY


@njit(**JIT)
def _act_second(h, code):
    one, two = type(h)(1), type(h)(2)
    if code == TANH:
        return -two * h * (one - h * h)
    if code == SIGMOID:
        return h * (one - h) * (one - two * h)
    if code == SOFTPLUS:
        s = -math.expm1(-h)
        return s * (one - s)
    return type(h)(0)                            # PIECEWISE_LINEAR: zero away from the kink


@njit(**JIT)
def activation_nb(a, code, out):
    n, f = a.shape
    for i in range(n):
        for j in range(f):
            out[i, j] = _act(a[i, j], code)


@njit(**JIT)
def activation_deriv_nb(h, code, out):
    n, f = h.shape
    for i in range(n):
        for j in range(f):
            out[i, j] = _act_deriv(h[i, j], code)


@njit(**JIT)
def activation_second_nb(h, code, out):
    n, f = h.shape
    for i in range(n):
        for j in range(f):
            out[i, j] = _act_second(h[i, j], code)


# The two kernels every dense layer calls, forward and backward. The activation is chosen
# outside the loops (ReLU and identity, the layers of tinyvae's default VAE, get loops of their own),
# so that each inner loop is branch-free and LLVM turns it into SIMD instructions.

@njit(**JIT)
def bias_activation_nb(a, b, code, out):
    n, f = a.shape
    zero = a.dtype.type(0)
    if code == RELU:
        for i in range(n):
            for j in range(f):
                v = a[i, j] + b[j]
                out[i, j] = zero if v <= zero else v       # max(v, 0); a NaN stays NaN
    elif code == IDENTITY:
        for i in range(n):
            for j in range(f):
                out[i, j] = a[i, j] + b[j]
    else:
        for i in range(n):
            for j in range(f):
                out[i, j] = _act(a[i, j] + b[j], code)


@njit(**JIT)
def activation_backward_nb(dh, h, code, da, db):
    n, f = dh.shape
    zero, one = dh.dtype.type(0), dh.dtype.type(1)
    db[:] = 0
    if code == RELU:                                # f'(a) = 1 where h > 0, else 0
        for i in range(n):
            for j in range(f):
                g = dh[i, j] * (one if h[i, j] > zero else zero)    # a product, as in the twin (NaN stays NaN)
                da[i, j] = g
                db[j] += g
    elif code == IDENTITY:                          # f'(a) = 1
        for i in range(n):
            for j in range(f):
                g = dh[i, j]
                da[i, j] = g
                db[j] += g
    else:
        for i in range(n):
            for j in range(f):
                g = dh[i, j] * _act_deriv(h[i, j], code)
                da[i, j] = g
                db[j] += g


@njit(**JIT)
def bernoulli_nll_terms_nb(logits, x, scale, terms, dlogits):
    """terms = softplus(l) - x l elementwise (rows are summed by the caller, in SIMD-friendly
    NumPy), and dlogits = scale * (sigmoid(l) - x): one pass, one exp and one log1p each."""
    n, d = logits.shape
    real = logits.dtype.type
    zero, one = real(0), real(1)
    for i in range(n):
        for j in range(d):
            l, xi = logits[i, j], x[i, j]                   # read first: an out may be an input
            e = exp_nonpositive(-abs(l))                     # in (0, 1]: never overflows
            terms[i, j] = (max(l, zero) - xi * l) + log1p_unit(e)          # the order of the twin
            s = (one if l >= zero else e) / (one + e)       # sigmoid(l)
            dlogits[i, j] = scale * (s - xi)


@njit(**JIT)
def bernoulli_nll_nb(logits, x, rows):
    n, d = logits.shape
    zero = logits.dtype.type(0)
    for i in range(n):
        total = 0.0                                     # a row's sum in float64, as in the twin
        for j in range(d):
            l = logits[i, j]
            total += (max(l, zero) - x[i, j] * l) + log1p_unit(exp_nonpositive(-abs(l)))   # as the twin
        rows[i] = total


@njit(**JIT)
def gaussian_nll_grad_nb(mean, x, sigma2, scale, rows, dmean):
    n, d = mean.shape
    real = mean.dtype.type
    s2, c = real(sigma2), real(scale)
    two_s2, half_log = real(2) * s2, real(0.5 * math.log(2.0 * math.pi * sigma2))
    for i in range(n):
        total = 0.0                                     # a row's sum in float64, as in the twin
        for j in range(d):
            r = mean[i, j] - x[i, j]
            total += r * r / two_s2 + half_log
            dmean[i, j] = c * r / s2
        rows[i] = total


@njit(**JIT)
def gaussian_nll_nb(mean, x, sigma2, rows):
    n, d = mean.shape
    real = mean.dtype.type
    two_s2, half_log = real(2) * real(sigma2), real(0.5 * math.log(2.0 * math.pi * sigma2))
    for i in range(n):
        total = 0.0                                     # a row's sum in float64, as in the twin
        for j in range(d):
            r = mean[i, j] - x[i, j]
            total += r * r / two_s2 + half_log
        rows[i] = total


@njit(**JIT)
def reparameterize_nb(mu, logvar, eps, z, kl):
    n, k = mu.shape
    real = mu.dtype.type
    half = real(0.5)
    for i in range(n):
        total = 0.0                                     # a row's sum in float64, as in the twin
        for j in range(k):
            m, lv = mu[i, j], logvar[i, j]              # read before z is written: z may be mu
            z[i, j] = m + math.exp(half * lv) * eps[i, j]
            total += half * (m * m + math.expm1(lv) - lv)                    # expm1: see the twin
        kl[i] = total


@njit(**JIT)
def reparameterize_backward_nb(dz, mu, logvar, eps, kl_scale, dmu, dlogvar):
    n, k = mu.shape
    real = mu.dtype.type
    half, c = real(0.5), real(kl_scale)
    for i in range(n):
        for j in range(k):
            g, m, lv, e = dz[i, j], mu[i, j], logvar[i, j], eps[i, j]   # read first: an out may be an input
            dmu[i, j] = g + c * m
            dlogvar[i, j] = g * e * half * math.exp(half * lv) + c * half * math.expm1(lv)


@njit(**JIT)
def adam_nb(theta, g, m, v, lr, beta1, beta2, eps, t):
    # every scalar in the parameters' precision, the bias corrections 1/(1 - beta^t) once
    real = theta.dtype.type
    one = real(1)
    b1, b2, step, e = real(beta1), real(beta2), real(lr), real(eps)
    c1, c2 = real(1.0 / (1.0 - beta1**t)), real(1.0 / (1.0 - beta2**t))
    for i in range(theta.shape[0]):
        gi = g[i]
        mi = b1 * m[i] + (one - b1) * gi
        vi = b2 * v[i] + (one - b2) * gi * gi
        m[i] = mi
        v[i] = vi
        theta[i] -= step * (mi * c1) / (math.sqrt(vi * c2) + e)


@njit(**JIT)
def sgd_nb(theta, g, velocity, lr, momentum):
    real = theta.dtype.type
    step, mom = real(lr), real(momentum)
    for i in range(theta.shape[0]):
        vi = mom * velocity[i] - step * g[i]
        velocity[i] = vi
        theta[i] += vi


# --------------------------------------------------------------------------------------------
# the public kernels: one call, either backend, results written into `out` buffers when given
#
# The numba loops do not check bounds: an eps with fewer rows than mu would be read past its
# end and give silently wrong numbers. So every public kernel first compares shapes -- a few
# tuple comparisons, nothing that scans an array -- and both backends raise the same error.

def _real(name, a):
    """``a`` as an array of floats: float32 and float64 as they are; integers, booleans and
    lists as float64 (an activation of the integer array [-3, 2] must not come back as integers)."""
    a = np.asarray(a)
    if a.dtype != np.float32 and a.dtype != np.float64:
        if a.dtype.kind not in "biuf":
            raise TinyVAEError(f"{name} must be a numeric array, got dtype {a.dtype}")
        a = a.astype(np.float64)
    return a


def _matrix(name, a):
    """The (N, F) shape of a 2-D array; a clear error for anything else."""
    if a.ndim != 2:
        raise TinyVAEError(f"{name} must be a 2-D array (rows, columns), got shape {a.shape}")
    return a.shape


def _same(name, a, shape):
    """A clear error when an array (an input or an ``out`` buffer) does not have ``shape``."""
    if a is not None and a.shape != shape:
        raise TinyVAEError(f"{name} must have shape {shape}, got {a.shape}; the arrays of one kernel "
                           "call must match")


def _empty(like, out, shape=None):
    if out is not None:
        if out.dtype != like.dtype:
            raise TinyVAEError(f"an output or work array must have the dtype of the result, {like.dtype}; "
                               f"got {out.dtype}")
        _writable("an output or work array", out)
        return out
    return np.empty(like.shape if shape is None else shape, dtype=like.dtype)


def activation(a, kind, out=None):
    """h = f(a), a (N, F)."""
    a = _real("a", a)
    _same("out", out, _matrix("a", a))
    out = _empty(a, out)
    code = activation_code(kind)                  # an unknown name: the same error in both backends
    if _backend == "numba":
        activation_nb(a, code, out)
    else:
        out[...] = activation_np(a, kind)
    return out


def activation_deriv(h, kind, out=None):
    """f'(a) from h = f(a), (N, F)."""
    h = _real("h", h)
    _same("out", out, _matrix("h", h))
    out = _empty(h, out)
    code = activation_code(kind)                  # an unknown name: the same error in both backends
    if _backend == "numba":
        activation_deriv_nb(h, code, out)
    else:
        out[...] = activation_deriv_np(h, kind)
    return out


def activation_second(h, kind, out=None):
    """f''(a) from h = f(a), (N, F)."""
    h = _real("h", h)
    _same("out", out, _matrix("h", h))
    out = _empty(h, out)
    code = activation_code(kind)                  # an unknown name: the same error in both backends
    if _backend == "numba":
        activation_second_nb(h, code, out)
    else:
        out[...] = activation_second_np(h, kind)
    return out


def bias_activation(a, b, kind, out=None):
    """h = f(a + b) for a (N, F) and b (F,); ``out`` may be ``a`` itself (in place)."""
    a, b = _real("a", a), _real("b", b)
    N, F = _matrix("a", a)
    _same("b", b, (F,))
    _same("out", out, (N, F))
    out = _empty(a, out)
    code = activation_code(kind)                  # an unknown name: the same error in both backends
    if _backend == "numba":
        bias_activation_nb(a, b, code, out)
    else:
        out[...] = bias_activation_np(a, b, kind)
    return out


def activation_backward(dh, h, kind, da=None, db=None):
    """da = dh * f'(a) (N, F) and db = sum_n da (F,); ``da`` may be ``dh`` itself."""
    dh, h = _real("dh", dh), _real("h", h)
    N, F = _matrix("dh", dh)
    _same("h", h, (N, F))
    _same("da", da, (N, F))
    _same("db", db, (F,))
    da = _empty(dh, da)
    db = _empty(dh, db, shape=(F,))
    code = activation_code(kind)                  # an unknown name: the same error in both backends
    if _backend == "numba":
        activation_backward_nb(dh, h, code, da, db)
    else:
        da_, db_ = activation_backward_np(dh, h, kind)
        da[...], db[...] = da_, db_
    return da, db


def _nll_shapes(out_name, out, x, rows, d_name=None, d=None, work=None):
    """The shape checks of the four likelihood kernels: x, rows (N,), dout and work like out."""
    N, D = _matrix(out_name, out)
    _same("x", x, (N, D))
    _same("rows", rows, (N,))
    _same(d_name, d, (N, D))
    _same("work", work, (N, D))


def bernoulli_nll(logits, x, rows=None):
    """Per-example -log p(x|z) under a Bernoulli decoder with logits (N, D): returns (N,)."""
    logits, x = _real("logits", logits), _real("x", x)
    _nll_shapes("logits", logits, x, rows)
    rows = _empty(logits, rows, shape=logits.shape[:1])
    if _backend == "numba":
        bernoulli_nll_nb(logits, x, rows)
    else:
        rows[...] = bernoulli_nll_np(logits, x)
    return rows


@functools.lru_cache(maxsize=8)
def _ones(n, dtype):
    """A read-only vector of n ones, made once per (n, dtype)."""
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False
    return ones


def bernoulli_nll_grad(logits, x, scale, rows=None, dlogits=None, work=None):
    """Per-example Bernoulli -log p(x|z) (N,) and scale * (sigmoid(l) - x) (N, D), in one pass.

    ``work`` (N, D) is scratch space for the elementwise terms, summed per row afterwards in
    the model's dtype as ``work @ ones`` (a BLAS matrix-vector product: SIMD-fast, and unlike
    ``np.sum(work, axis=1, out=rows)`` it allocates nothing on NumPy before 2.3; the training
    step's loss only reports progress), where the twin and the evaluation kernels sum in
    float64: they agree to float32 rounding."""
    logits, x = _real("logits", logits), _real("x", x)
    _nll_shapes("logits", logits, x, rows, "dlogits", dlogits, work)
    rows = _empty(logits, rows, shape=logits.shape[:1])
    dlogits = _empty(logits, dlogits)
    if _backend == "numba":
        work = _empty(logits, work)
        bernoulli_nll_terms_nb(logits, x, logits.dtype.type(scale), work, dlogits)
        np.matmul(work, _ones(work.shape[1], work.dtype), out=rows)          # the row sums
    else:
        rows_, d_ = bernoulli_nll_grad_np(logits, x, scale)
        rows[...], dlogits[...] = rows_, d_
    return rows, dlogits


def _variance(sigma2):
    if not float(sigma2) > 0:                          # NaN too
        raise TinyVAEError(f"the Gaussian variance sigma2 must be positive, got {sigma2!r}")


def gaussian_nll(mean, x, sigma2, rows=None):
    """Per-example -log N(x; o, sigma2 I) = sum_d [ (x_d - o_d)^2 / (2 sigma2) + log(2 pi sigma2) / 2 ]
    for means o (N, D): returns (N,)."""
    mean, x = _real("mean", mean), _real("x", x)
    _nll_shapes("mean", mean, x, rows)
    _variance(sigma2)
    rows = _empty(mean, rows, shape=mean.shape[:1])
    if _backend == "numba":
        gaussian_nll_nb(mean, x, float(sigma2), rows)
    else:
        rows[...] = gaussian_nll_np(mean, x, sigma2)
    return rows


def gaussian_nll_grad(mean, x, sigma2, scale, rows=None, dmean=None):
    """Per-example Gaussian -log p(x|z) (N,) and scale * (o - x) / sigma2 (N, D), in one pass."""
    mean, x = _real("mean", mean), _real("x", x)
    _nll_shapes("mean", mean, x, rows, "dmean", dmean)
    _variance(sigma2)
    rows = _empty(mean, rows, shape=mean.shape[:1])
    dmean = _empty(mean, dmean)
    if _backend == "numba":
        gaussian_nll_grad_nb(mean, x, float(sigma2), float(scale), rows, dmean)
    else:
        rows_, d_ = gaussian_nll_grad_np(mean, x, sigma2, scale)
        rows[...], dmean[...] = rows_, d_
    return rows, dmean


def reparameterize(mu, logvar, eps, z=None, kl=None):
    """z = mu + exp(logvar/2) * eps (N, Z) and the per-example Gaussian KL to N(0, I) (N,)."""
    mu, logvar, eps = _real("mu", mu), _real("logvar", logvar), _real("eps", eps)
    N, Z = _matrix("mu", mu)
    for name, a in (("logvar", logvar), ("eps", eps), ("z", z)):
        _same(name, a, (N, Z))
    _same("kl", kl, (N,))
    z = _empty(mu, z)
    kl = _empty(mu, kl, shape=(N,))
    if _backend == "numba":
        reparameterize_nb(mu, logvar, eps, z, kl)
    else:
        z_, kl_ = reparameterize_np(mu, logvar, eps)
        z[...], kl[...] = z_, kl_
    return z, kl


def reparameterize_backward(dz, mu, logvar, eps, kl_scale, dmu=None, dlogvar=None):
    """(dmu, dlogvar) of (loss through z) + kl_scale * KL; see :func:`reparameterize_backward_np`."""
    dz, mu, logvar, eps = _real("dz", dz), _real("mu", mu), _real("logvar", logvar), _real("eps", eps)
    shape = _matrix("mu", mu)
    for name, a in (("dz", dz), ("logvar", logvar), ("eps", eps), ("dmu", dmu), ("dlogvar", dlogvar)):
        _same(name, a, shape)
    dmu = _empty(mu, dmu)
    dlogvar = _empty(mu, dlogvar)
    if _backend == "numba":
        reparameterize_backward_nb(dz, mu, logvar, eps, float(kl_scale), dmu, dlogvar)
    else:
        dmu_, dlv_ = reparameterize_backward_np(dz, mu, logvar, eps, kl_scale)
        dmu[...], dlogvar[...] = dmu_, dlv_
    return dmu, dlogvar


def _writable(name, a):
    if not a.flags.writeable:
        raise TinyVAEError(f"{name} is read-only; pass an array the kernel may write (a copy: a.copy())")


def _flat(theta, t=None, **others):
    """theta a flat (P,) vector and every other optimizer array of the same shape, all writable
    but the gradient g; the step count t, when given, from 1."""
    if theta.ndim != 1:
        raise TinyVAEError(f"theta must be a flat (P,) vector, got shape {theta.shape}")
    for name, a in others.items():
        _same(name, a, theta.shape)
        if name != "g":
            _writable(name, a)
    _writable("theta", theta)
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1):
        raise TinyVAEError(f"Adam's step count t must be an integer from 1 (the first step), got {t!r}")


def adam(theta, g, m, v, lr, beta1, beta2, eps, t):
    """In-place Adam step over flat arrays theta, g, m, v (all (P,)); t is the step count from 1."""
    _flat(theta, t=t, g=g, m=m, v=v)
    if _backend == "numba":
        adam_nb(theta, g, m, v, lr, beta1, beta2, eps, t)
    else:
        adam_np(theta, g, m, v, lr, beta1, beta2, eps, t)


def sgd(theta, g, velocity, lr, momentum):
    """In-place SGD-with-momentum step over flat arrays theta, g, velocity (all (P,))."""
    _flat(theta, g=g, velocity=velocity)
    if _backend == "numba":
        sgd_nb(theta, g, velocity, lr, momentum)
    else:
        sgd_np(theta, g, velocity, lr, momentum)
