"""The numba kernels agree with their NumPy twins, including at extreme values."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tinyvae as tv
from tinyvae import kernels as K

EXTREMES = np.array([-1e4, -750.0, -40.0, -1.0, -1e-12, 0.0, 1e-12, 1.0, 40.0, 750.0, 1e4])


def both(fn, *args, **kw):
    """Run fn under each backend on copies of the arguments; return (numba result, numpy result)."""
    out = {}
    for name in ("numba", "numpy"):
        old = tv.set_backend(name)
        try:
            res = fn(*[a.copy() if isinstance(a, np.ndarray) else a for a in args], **kw)
        finally:
            tv.set_backend(old)
        out[name] = res if isinstance(res, tuple) else (res,)
    return out["numba"], out["numpy"]


def assert_agree(nb, np_, rtol=1e-12):
    for a, b in zip(nb, np_):
        assert np.all(np.isfinite(a)), "numba kernel produced a non-finite value"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-300)


def matrix(max_side=6, lo=-50.0, hi=50.0, max_cols=70):
    # up to 70 columns: the numba loops' SIMD bodies take blocks of 8-32 and a tail, and a
    # loop that dropped the tail had passed on widths of at most 6
    shape = st.tuples(st.integers(1, max_side), st.integers(1, max(max_side, max_cols)))
    return arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False))


@pytest.mark.parametrize("kind", K.ACTIVATIONS)
def test_activation_twins_agree_on_extremes(kind):
    a = np.add.outer(EXTREMES, np.array([0.0, 0.5]))          # (11, 2)
    assert_agree(*both(K.activation, a, kind))
    h = K.activation_np(a, kind)
    assert_agree(*both(K.activation_deriv, h, kind))
    assert_agree(*both(K.activation_second, h, kind))
    b = np.array([0.25, -0.5])
    assert_agree(*both(K.bias_activation, a, b, kind))
    dh = np.ones_like(a) * 0.3
    assert_agree(*both(K.activation_backward, dh, h, kind))


@pytest.mark.parametrize("kind", ["relu", "identity"])
def test_fast_layer_loops_pass_nan_and_inf_through_like_the_twin(kind):
    """relu and identity have loops of their own in the numba kernels; a NaN or inf arriving
    from upstream must come out as the twin's formula dh * f'(a) says, not be masked to 0."""
    dh = np.array([[np.nan, np.inf, -np.inf, 1.5], [2.0, np.nan, 0.0, -1.0]])
    h = np.array([[0.0, 0.0, 2.0, 3.0], [0.0, 1.0, 0.0, 0.0]])
    with np.errstate(invalid="ignore"):
        (da_nb, db_nb), (da_np, db_np) = both(K.activation_backward, dh, h, kind)
    np.testing.assert_array_equal(da_nb, da_np)
    np.testing.assert_array_equal(db_nb, db_np)
    a = np.array([[np.nan, -np.inf, np.inf, -1.0]])
    nb, np_ = both(K.bias_activation, a, np.zeros(4), kind)
    np.testing.assert_array_equal(nb, np_)


@pytest.mark.parametrize("kind", K.ACTIVATIONS)
@given(a=matrix())
def test_activation_twins_agree_random(kind, a):
    assert_agree(*both(K.activation, a, kind))
    assert_agree(*both(K.bias_activation, a, np.sin(np.arange(a.shape[1], dtype=np.float64)), kind))
    h = K.activation_np(a, kind)
    dh = np.cos(a)
    assert_agree(*both(K.activation_backward, dh, h, kind))
    assert_agree(*both(K.activation_second, h, kind))


@given(l=matrix(lo=-1e4, hi=1e4), seed=st.integers(0, 2**16))
def test_bernoulli_twins_agree(l, seed):
    x = np.random.default_rng(seed).uniform(size=l.shape)
    assert_agree(*both(K.bernoulli_nll, l, x))
    assert_agree(*both(K.bernoulli_nll_grad, l, x, 0.125))


@given(o=matrix(), seed=st.integers(0, 2**16), sigma2=st.floats(1e-3, 1e3))
def test_gaussian_twins_agree(o, seed, sigma2):
    x = np.random.default_rng(seed).uniform(-3, 3, size=o.shape)      # real values, not only [0, 1]
    assert_agree(*both(K.gaussian_nll, o, x, sigma2))
    assert_agree(*both(K.gaussian_nll_grad, o, x, sigma2, 0.5))


@given(mu=matrix(lo=-1e3, hi=1e3), seed=st.integers(0, 2**16))
def test_reparameterize_twins_agree(mu, seed):
    r = np.random.default_rng(seed)
    # log variances far past +-30 (a kernel that clamped them there had passed), and exact zeros
    logvar = r.uniform(-300, 300, size=mu.shape) * (r.uniform(size=mu.shape) < 0.9)
    eps, dz = r.standard_normal(mu.shape), r.standard_normal(mu.shape)
    assert_agree(*both(K.reparameterize, mu, logvar, eps))
    assert_agree(*both(K.reparameterize_backward, dz, mu, logvar, eps, 0.7))



@pytest.mark.parametrize("backend_name", K.BACKENDS)
def test_kl_of_a_nearly_collapsed_dimension_stays_nonnegative_in_float32(backend_name, backend):
    """Near logvar = 0 the terms of exp(lv) - 1 - lv nearly cancel. Computed as expm1(lv) - lv,
    the KL keeps its sign and errs by a rounding of lv itself, not of 1 (exp(lv) - 1 - lv gave
    -8e-9 at lv = -1e-4, where the KL is 2.5e-9)."""
    backend(backend_name)
    lv = np.concatenate([-np.logspace(-7, -2, 21), [0.0], np.logspace(-7, -2, 21)]).astype(np.float32)
    logvar = lv[:, None]                                        # (43, 1): one dimension per row
    mu = np.zeros_like(logvar)
    _, kl = K.reparameterize(mu, logvar, mu)
    exact = 0.5 * (np.expm1(lv.astype(np.float64)) - lv.astype(np.float64))   # of the float32 lv
    assert kl.dtype == np.float32 and np.all(kl >= 0)
    assert np.all(np.abs(kl - exact) <= 1.2e-7 * np.abs(lv))   # float32's eps times |lv|
    vae = tv.VAE(4, hidden_dims=(), latent_dim=2, dtype="float32")
    vae.encode = lambda x: (np.zeros((2, 2), np.float32), np.full((2, 2), -1e-4, np.float32))
    assert np.all(vae.kl_per_dimension(np.zeros((2, 4), np.float32)) > 0)


@pytest.mark.parametrize("case", range(10))
def test_float32_twins_agree_to_float32_rounding(case):
    """The numba kernels compute in the arrays' precision, as the twins do: in float32 the two
    agree to a few roundings (they used to differ where numba computed in float64). Seeded
    cases, not Hypothesis: its examples change with the project's source (see test_vae)."""
    r = np.random.default_rng([7, case])
    mu = r.uniform(-10, 10, size=tuple(r.integers(1, 7, size=2))).astype(np.float32)
    logvar = r.uniform(-3, 3, size=mu.shape).astype(np.float32)
    eps, dz = (r.standard_normal(mu.shape).astype(np.float32) for _ in range(2))
    x = r.uniform(size=mu.shape).astype(np.float32)
    for nb, np_ in (both(K.reparameterize, mu, logvar, eps),
                    both(K.reparameterize_backward, dz, mu, logvar, eps, 0.7),
                    both(K.gaussian_nll_grad, mu, x, 0.3, 0.5),
                    both(K.gaussian_nll, mu, x, 0.3),
                    both(K.bernoulli_nll, mu, x)):
        for a, b in zip(nb, np_):
            assert a.dtype == b.dtype == np.float32
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6 * np.abs(b).max())


@pytest.mark.parametrize("kind", ["sigmoid", "softplus", "tanh"])
def test_float32_kernels_pass_nan_through_like_the_twin(kind):
    """exp of a NaN must not be flushed to 0 by the float32 exp's underflow test."""
    a = np.array([[np.nan, -100.0, 0.5]], np.float32)
    nb, np_ = both(K.activation, a, kind)
    assert np.isnan(nb[0][0, 0]) and np.isnan(np_[0][0, 0])
    logits, x = np.array([[np.nan, 1.0]], np.float32), np.array([[0.5, 0.5]], np.float32)
    with np.errstate(invalid="ignore"):
        (rows_nb, d_nb), (rows_np, d_np) = both(K.bernoulli_nll_grad, logits, x, 1.0)
    np.testing.assert_array_equal(np.isnan(d_nb), [[True, False]])
    np.testing.assert_array_equal(np.isnan(d_np), [[True, False]])
    assert np.isnan(rows_nb[0]) and np.isnan(rows_np[0])

@given(n=st.integers(1, 50), t=st.integers(1, 1000), seed=st.integers(0, 2**16))
def test_optimizer_twins_agree(n, t, seed):
    r = np.random.default_rng(seed)
    theta, g = r.standard_normal(n), r.standard_normal(n) * 10
    m, v = r.standard_normal(n), r.uniform(0, 2, n)

    def adam(theta, g, m, v):
        K.adam(theta, g, m, v, 1e-3, 0.9, 0.999, 1e-8, t)
        return theta, m, v

    assert_agree(*both(adam, theta, g, m, v))

    def sgd(theta, g, vel):
        K.sgd(theta, g, vel, 0.1, 0.9)
        return theta, vel

    assert_agree(*both(sgd, theta, g, m))


def test_twins_handle_float32_and_views():
    a = np.linspace(-5, 5, 24, dtype=np.float32).reshape(4, 6)

    def on_a_view(a):                                           # both() copies its arguments,
        view = a[:, 1:4]                                        # so the view is made here
        assert not view.flags.c_contiguous
        return K.activation(view, "softplus")

    nb, np_ = both(on_a_view, a)
    assert nb[0].dtype == np.float32 and nb[0].shape == (4, 3)
    np.testing.assert_allclose(nb[0], np_[0], rtol=1e-6)
    np.testing.assert_allclose(nb[0], np.log1p(np.exp(a[:, 1:4].astype(np.float64))), rtol=1e-6)


@pytest.mark.parametrize("kind", K.ACTIVATIONS)
def test_float32_layer_and_optimizer_twins_agree(kind):
    """float32 is the models' default: the layer kernels and both optimizers agree with their
    twins there too, to float32's rounding."""
    r = np.random.default_rng(3)
    a = r.uniform(-4, 4, (5, 7)).astype(np.float32)
    b, dh = r.standard_normal(7).astype(np.float32), r.standard_normal((5, 7)).astype(np.float32)
    h = K.activation_np(a, kind)
    assert h.dtype == np.float32
    for nb, np_ in (both(K.bias_activation, a, b, kind), both(K.activation_deriv, h, kind),
                    both(K.activation_second, h, kind), both(K.activation_backward, dh, h, kind)):
        for x, y in zip(nb, np_):
            assert x.dtype == y.dtype == np.float32
            np.testing.assert_allclose(x, y, rtol=2e-6, atol=2e-6 * max(1.0, np.abs(y).max()))
    theta, g = r.standard_normal(50).astype(np.float32), r.standard_normal(50).astype(np.float32)
    m, v = r.standard_normal(50).astype(np.float32), r.uniform(0, 2, 50).astype(np.float32)

    def adam(theta, g, m, v):
        K.adam(theta, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 3)
        return theta, m, v

    def sgd(theta, g, vel):
        K.sgd(theta, g, vel, 0.1, 0.9)
        return theta, vel

    for nb, np_ in (both(adam, theta, g, m, v), both(sgd, theta, g, m)):
        for x, y in zip(nb, np_):
            assert x.dtype == np.float32
            np.testing.assert_allclose(x, y, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["sigmoid", "softplus", "tanh"])
@pytest.mark.parametrize("backend_name", K.BACKENDS)
def test_stable_at_1e4(kind, backend_name, backend):
    backend(backend_name)
    a = np.array([[-1e4, 1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        h = K.activation(a, kind)
        d = K.activation_deriv(h, kind)
    assert np.all(np.isfinite(h)) and np.all(np.isfinite(d))
    expected = {"sigmoid": [0.0, 1.0], "softplus": [0.0, 1e4], "tanh": [-1.0, 1.0]}[kind]
    np.testing.assert_allclose(h[0], expected, atol=1e-300)


@pytest.mark.parametrize("backend_name", K.BACKENDS)
def test_bernoulli_stable_at_1e4(backend_name, backend):
    backend(backend_name)
    logits = np.array([[-1e4, 1e4, -1e4, 1e4]])
    x = np.array([[0.0, 1.0, 1.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        rows, d = K.bernoulli_nll_grad(logits, x, 1.0)
    # a confident right answer costs nothing; a confident wrong one costs |l| nats each
    np.testing.assert_allclose(rows, [2e4])
    np.testing.assert_allclose(d, [[0.0, 0.0, -1.0, 1.0]])


def test_set_backend_rejects_unknown_and_returns_old(backend):
    old = tv.get_backend()
    assert backend("numpy") == old
    assert tv.get_backend() == "numpy"
    with pytest.raises(ValueError, match="unknown backend"):
        tv.set_backend("cuda")


@pytest.mark.parametrize("backend_name", K.BACKENDS)
def test_unknown_activation_is_a_clear_error(backend_name, backend):
    backend(backend_name)
    for call in (lambda: K.activation(np.zeros((1, 1)), "swish"),
                 lambda: K.bias_activation(np.zeros((1, 1)), np.zeros(1), "swish"),
                 lambda: K.activation_backward(np.zeros((1, 1)), np.zeros((1, 1)), "swish")):
        with pytest.raises(tv.TinyVAEError, match="unknown activation 'swish'"):
            call()


@pytest.mark.parametrize("backend_name", K.BACKENDS)
def test_kernel_misuse_is_the_same_clear_error_in_both_backends(backend_name, backend):
    """A read-only output, a 0-d array for a scale, a variance <= 0, Adam at t = 0: a numba
    TypingError, a silent NaN or a plain ValueError before, depending on the backend."""
    backend(backend_name)
    a = np.ones((2, 3))
    frozen = np.zeros((2, 3))
    frozen.setflags(write=False)
    with pytest.raises(tv.TinyVAEError, match="read-only"):
        K.activation(a, "relu", out=frozen)
    theta = np.zeros(3)
    theta.setflags(write=False)
    with pytest.raises(tv.TinyVAEError, match="theta is read-only"):
        K.sgd(theta, np.ones(3), np.zeros(3), 0.1, 0.0)
    dmu, dlv = K.reparameterize_backward(a, a, a, a, np.array(0.1))          # works in both now
    np.testing.assert_allclose(dmu, 1 + 0.1 * a)
    for sigma2 in (0.0, -1.0, float("nan")):
        with pytest.raises(tv.TinyVAEError, match="sigma2 must be positive"):
            K.gaussian_nll(a, a, sigma2)
    with pytest.raises(tv.TinyVAEError, match="step count t must be an integer from 1"):
        K.adam(np.zeros(3), np.ones(3), np.zeros(3), np.zeros(3), 1e-3, 0.9, 0.999, 1e-8, 0)


def test_backend_env_variable_is_read(tmp_path):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import tinyvae; print(tinyvae.get_backend())"],
                         env={**__import__("os").environ, "TINYVAE_BACKEND": "numpy"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"


# ---------------------------------------------------------------------------------------------
# the float32 fast path: polynomial exp and log1p that LLVM vectorizes

def test_float32_exp_and_log1p_are_accurate_to_a_few_ulp():
    from numba import njit

    @njit
    def exp_all(x, out):
        for i in range(x.shape[0]):
            out[i] = K.exp_nonpositive(x[i])

    @njit
    def log1p_all(x, out):
        for i in range(x.shape[0]):
            out[i] = K.log1p_unit(x[i])

    x = np.linspace(-87, 0, 200_001).astype(np.float32)
    out = np.empty_like(x)
    exp_all(x, out)
    exact = np.exp(x.astype(np.float64))
    assert np.max(np.abs(out - exact) / exact) < 2.5e-7          # float32 eps is 1.2e-7
    tiny = np.array([-87.5, -100.0, -1e4], np.float32)
    exp_all(tiny, out[:3])
    assert np.all(out[:3] < 2e-38) and np.all(out[:3] >= 0)       # flushed, never garbage
    e = np.linspace(0, 1, 100_001).astype(np.float32)
    out = np.empty_like(e)
    log1p_all(e, out)
    np.testing.assert_allclose(out, np.log1p(e.astype(np.float64)), rtol=2.5e-7, atol=1e-45)
    # float64 goes to libm: exactly NumPy's (to an ulp)
    x64 = np.linspace(-700, 0, 1001)
    out64 = np.empty_like(x64)
    exp_all(x64, out64)
    np.testing.assert_allclose(out64, np.exp(x64), rtol=1e-15)


@given(l=matrix(max_side=40, lo=-1e4, hi=1e4), seed=st.integers(0, 2**16))
def test_bernoulli_float32_kernel_matches_the_float64_formula(l, seed):
    x = np.random.default_rng(seed).uniform(size=l.shape)
    ref_rows, ref_d = K.bernoulli_nll_grad_np(l, x, 0.25)
    l32, x32 = l.astype(np.float32), x.astype(np.float32)
    old = tv.set_backend("numba")
    try:
        rows, d = K.bernoulli_nll_grad(l32, x32, 0.25)
    finally:
        tv.set_backend(old)
    assert rows.dtype == d.dtype == np.float32
    # float32 inputs carry rounding of |l| * 6e-8 per term already; compare on that scale
    scale = np.sum(np.abs(l) + 1, axis=1)
    assert np.all(np.abs(rows - ref_rows) <= 1e-6 * scale)
    np.testing.assert_allclose(d, ref_d, rtol=1e-5, atol=1e-7)


def test_every_numba_kernel_has_a_numpy_twin_and_a_public_entry():
    """DESIGN: each numba kernel X_nb has a NumPy twin X_np that reads like the formula, and a
    public X that picks one by the backend (the Bernoulli terms kernel is the first half of
    bernoulli_nll_grad)."""
    from numba.core.registry import CPUDispatcher
    kernels = [n[:-3] for n, f in vars(K).items() if isinstance(f, CPUDispatcher) and n.endswith("_nb")]
    assert len(kernels) >= 12
    for name in kernels:
        public = {"bernoulli_nll_terms": "bernoulli_nll_grad"}.get(name, name)
        assert callable(getattr(K, public + "_np", None)), f"{name}_nb has no twin {public}_np"
        assert callable(getattr(K, public, None)), f"{name}_nb has no public {public}"


def test_every_numba_kernel_is_cached_exact_and_releases_the_gil():
    """The JIT options are set in one place; a kernel compiled without them would either lose
    exactness (fastmath), recompile on every run (no cache) or hold the interpreter lock."""
    from numba.core.registry import CPUDispatcher
    dispatchers = {name: f for name, f in vars(K).items() if isinstance(f, CPUDispatcher)}
    assert len(dispatchers) >= 15
    for name, f in dispatchers.items():
        opts = f.targetoptions
        assert opts.get("nogil") is True, name
        assert not opts.get("fastmath"), name
        assert f._cache.__class__.__name__ == "FunctionCache", name


# ---------------------------------------------------------------------------------------------
# shapes: the numba loops do not check bounds, so the public kernels compare shapes first

def _mismatched_calls():
    """(label, call) pairs whose arrays disagree in shape; each must raise, on either backend."""
    f = np.float64
    a, b3 = np.ones((4, 3), f), np.ones(3, f)
    m, short = np.zeros((6, 2), f), np.zeros((2, 2), f)
    theta = np.zeros(5, f)
    return [
        ("reparameterize logvar rows", lambda: K.reparameterize(m, short, m)),
        ("reparameterize eps rows", lambda: K.reparameterize(m, m, np.ones((1, 2), f))),
        ("reparameterize 1-D", lambda: K.reparameterize(np.zeros(2), np.zeros(2), np.ones(2))),
        ("reparameterize z out", lambda: K.reparameterize(m, m, m, z=np.empty((2, 2), f))),
        ("reparameterize kl out", lambda: K.reparameterize(m, m, m, kl=np.empty(2, f))),
        ("reparameterize_backward dz", lambda: K.reparameterize_backward(short, m, m, m, 1.0)),
        ("reparameterize_backward eps", lambda: K.reparameterize_backward(m, m, m, short, 1.0)),
        ("bernoulli_nll x", lambda: K.bernoulli_nll(a, np.ones((12, 3), f))),
        ("bernoulli_nll_grad x", lambda: K.bernoulli_nll_grad(np.ones((2, 3), f), a, 1.0)),
        ("bernoulli_nll_grad work", lambda: K.bernoulli_nll_grad(a, a, 1.0, work=np.empty((2, 3), f))),
        ("gaussian_nll x", lambda: K.gaussian_nll(a, np.ones((4, 2), f), 1.0)),
        ("gaussian_nll_grad dmean", lambda: K.gaussian_nll_grad(a, a, 1.0, 1.0, dmean=np.empty((1, 3), f))),
        ("bias_activation b", lambda: K.bias_activation(a, np.ones(7, f), "relu")),
        ("bias_activation out", lambda: K.bias_activation(a, b3, "tanh", out=np.empty((2, 3), f))),
        ("activation_backward h", lambda: K.activation_backward(a, np.ones((2, 3), f), "relu")),
        ("activation_backward db", lambda: K.activation_backward(a, a, "relu", db=np.empty(1, f))),
        ("activation out", lambda: K.activation(a, "sigmoid", out=np.empty((1, 3), f))),
        ("adam v", lambda: K.adam(theta, theta.copy(), theta.copy(), np.zeros(2, f), 1e-3, 0.9, 0.999, 1e-8, 1)),
        ("sgd g", lambda: K.sgd(theta, np.zeros(9, f), theta.copy(), 0.1, 0.0)),
    ]


@pytest.mark.parametrize("name", ["numba", "numpy"])
def test_kernels_refuse_mismatched_shapes_on_both_backends(backend, name):
    """Before the checks, numba read past the end of the shorter array and returned garbage
    (NumPy broadcast some cases, raised bare errors in others): now one TinyVAEError each."""
    backend(name)
    for label, call in _mismatched_calls():
        with pytest.raises(tv.TinyVAEError, match="must"):
            call()
            pytest.fail(f"{label}: no error")


def test_matching_shapes_still_pass_the_checks(backend):
    """The checks let every correct call through (with and without out buffers)."""
    m = np.full((3, 2), 0.5)
    for name in ("numba", "numpy"):
        backend(name)
        z, kl = K.reparameterize(m, m, m, z=np.empty((3, 2)), kl=np.empty(3))
        np.testing.assert_allclose(z, 0.5 + np.exp(0.25) * 0.5)
        da, db = K.activation_backward(m, m, "identity", da=np.empty((3, 2)), db=np.empty(2))
        np.testing.assert_array_equal(db, [1.5, 1.5])


@pytest.mark.parametrize("kind", K.ACTIVATIONS)
def test_activation_backward_overwrites_a_reused_bias_gradient(backend, kind):
    """db is a gradient buffer reused every step: the kernel must overwrite it with sum_n dA,
    not add to what the last step left there."""
    rng = np.random.default_rng(1)
    dh, h = rng.normal(size=(5, 3)), rng.uniform(0.1, 0.9, size=(5, 3))   # h inside every range
    for name in ("numba", "numpy"):
        backend(name)
        db = np.full(3, 7.0)                                               # last step's values
        da, db = K.activation_backward(dh, h, kind, da=np.full((5, 3), 7.0), db=db)
        np.testing.assert_allclose(db, da.sum(axis=0), rtol=1e-12, err_msg=name)
        if kind == "relu":                                                 # h > 0: f'(a) = 1
            np.testing.assert_array_equal(da, dh)


def test_unknown_backend_and_activation_are_tinyvae_errors():
    with pytest.raises(tv.TinyVAEError, match="numba, numpy"):
        tv.set_backend("foo")
    with pytest.raises(tv.TinyVAEError, match="unknown activation"):
        K.activation_code("foo")


def test_an_invalid_TINYVAE_BACKEND_does_not_break_the_import():
    """It warns (naming the variable and the choices), falls back to numba and keeps the
    message in kernels.BACKEND_ENV_ERROR for the command line to report."""
    import os
    import subprocess
    import sys
    code = ("import warnings; warnings.simplefilter('always')\n"
            "import tinyvae as tv\n"
            "print(tv.get_backend()); print(tv.kernels.BACKEND_ENV_ERROR)")
    run = lambda value: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       env=dict(os.environ, TINYVAE_BACKEND=value), timeout=120)
    bad = run("foo")
    assert bad.returncode == 0, bad.stderr
    backend, message = bad.stdout.splitlines()
    assert backend == "numba"
    assert "TINYVAE_BACKEND='foo'" in message and "numba, numpy" in message
    assert "TINYVAE_BACKEND='foo'" in bad.stderr and "Warning" in bad.stderr
    fine = run("NumPy")
    assert fine.stdout.splitlines() == ["numpy", "None"] and "Warning" not in fine.stderr


@pytest.mark.parametrize("backend_name", K.BACKENDS)
def test_a_784_term_row_in_float32_is_summed_to_its_last_digit(backend_name, backend):
    """The per-example NLLs add 784 float32 terms; both backends accumulate them in float64, so
    a row is off by about one float32 rounding of its total, not by the 2e-3 nats (18 roundings)
    that adding them one after another in float32 gave."""
    backend(backend_name)
    r = np.random.default_rng(0)
    logits = (r.standard_normal((500, 784)) * 4).astype(np.float32)
    x, mean = r.uniform(size=(2, 500, 784)).astype(np.float32)
    exact = K.bernoulli_nll_np(logits.astype(np.float64), x.astype(np.float64))
    assert np.all(np.abs(K.bernoulli_nll(logits, x) - exact) <= 1.2e-7 * np.abs(exact))
    exact = K.gaussian_nll_np(mean.astype(np.float64), x.astype(np.float64), 0.3)
    assert np.all(np.abs(K.gaussian_nll(mean, x, 0.3) - exact) <= 1.2e-7 * np.abs(exact))
    assert np.all(np.abs(K.gaussian_nll_grad(mean, x, 0.3, 1.0)[0] - exact) <= 1.2e-7 * np.abs(exact))


@pytest.mark.parametrize("backend_name", ["numba", "numpy"])
def test_bernoulli_nll_keeps_the_small_term_of_a_confident_correct_logit(backend_name):
    # softplus(l) - x l for x = 1 is log(1 + exp(-l)): 2.06e-9 at l = 20, not 0 by cancellation
    old = K.set_backend(backend_name)
    try:
        for dt in (np.float32, np.float64):
            logits = np.array([[20.0, 10.0, -20.0]], dt)
            x = np.array([[1.0, 1.0, 0.0]], dt)
            exact = np.sum(np.log1p(np.exp(-np.abs(logits.astype(np.float64)))))
            assert K.bernoulli_nll(logits, x)[0] == pytest.approx(exact, rel=1e-5)
            rows = K.bernoulli_nll_grad(logits, x, 1.0, rows=np.empty(1, dt), dlogits=np.empty_like(logits),
                                        work=np.empty_like(logits))[0]          # the training step's kernel
            assert rows[0] == pytest.approx(exact, rel=1e-5)
    finally:
        K.set_backend(old)


def test_likelihood_kernels_of_integer_inputs_compute_in_floats():
    l, x = [[3, -2]], [[1, 0]]
    assert K.bernoulli_nll(l, x)[0] == pytest.approx(np.logaddexp(0, -3) + np.logaddexp(0, -2))
    assert K.gaussian_nll(l, x, 1.0)[0] == pytest.approx(0.5 * (4 + 4) + np.log(2 * np.pi))
    z, kl = K.reparameterize([[1, 2]], [[1, 0]], [[1, 1]])
    assert kl[0] == pytest.approx(0.5 * (1 + np.expm1(1) - 1 + 4 + 0))
    assert z.dtype == np.float64 and np.allclose(z, [[1 + np.exp(0.5), 3]])


def test_without_a_writable_cache_the_kernels_compile_each_run_with_a_warning():
    """A read-only install with no writable home had made 'import tinyvae' fail: numba's
    cache=True raises when it has nowhere to write."""
    script = ("import warnings, numba.core.caching as c\n"
              "c.CacheImpl._locator_classes = []\n"          # no place to cache, as on such an install
              "import numpy as np, tinyvae as tv\n"
              "with warnings.catch_warnings(record=True) as w:\n"
              "    warnings.simplefilter('always')\n"
              "    k = tv.kernels\n"
              "print(len([x for x in w if 'NUMBA_CACHE_DIR' in str(x.message)]), k.JIT['cache'],\n"
              "      k.activation(np.array([[-1.0, 2.0]]), 'relu').tolist())\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "False", "[[0.0,", "2.0]]"], r.stdout


# every public kernel with (N, F) outputs: (inputs by name, the outputs that may be passed in)
_IN_PLACE = [
    (lambda a, out=None: K.activation(a, "tanh", out=out), ("a",), ("out",)),
    (lambda h, out=None: K.activation_deriv(h, "sigmoid", out=out), ("h",), ("out",)),
    (lambda h, out=None: K.activation_second(h, "tanh", out=out), ("h",), ("out",)),
    (lambda a, out=None: K.bias_activation(a, np.linspace(-1, 1, a.shape[1]), "softplus", out=out), ("a",), ("out",)),
    (lambda dh, h, da=None: K.activation_backward(dh, h, "sigmoid", da=da), ("dh", "h"), ("da",)),
    (lambda logits, x, dlogits=None, work=None: K.bernoulli_nll_grad(logits, x, 0.5, dlogits=dlogits, work=work),
     ("logits", "x"), ("dlogits", "work")),
    (lambda mean, x, dmean=None: K.gaussian_nll_grad(mean, x, 0.7, 0.5, dmean=dmean), ("mean", "x"), ("dmean",)),
    (lambda mu, logvar, eps, z=None: K.reparameterize(mu, logvar, eps, z=z), ("mu", "logvar", "eps"), ("z",)),
    (lambda dz, mu, logvar, eps, dmu=None, dlogvar=None: K.reparameterize_backward(dz, mu, logvar, eps, 0.7,
                                                                                   dmu=dmu, dlogvar=dlogvar),
     ("dz", "mu", "logvar", "eps"), ("dmu", "dlogvar")),
]


@pytest.mark.parametrize("backend_name", K.BACKENDS)
@pytest.mark.parametrize("case", range(len(_IN_PLACE)))
def test_an_output_written_over_an_input_gives_the_same_results(backend_name, backend, case):
    """reparameterize(mu, logvar, eps, z=mu) had given a wrong KL under numba (z written before
    mu was read for the KL), and reparameterize_backward(..., dmu=dz) a wrong dlogvar; the twins
    were right. Every (output, input) pair of the same shape is tried, in place."""
    backend(backend_name)
    kernel, inputs, outs = _IN_PLACE[case]
    r = np.random.default_rng(case)
    given = {name: r.uniform(0.05, 0.95, size=(3, 11)) for name in inputs}   # valid for every input
    expected = kernel(**{k: v.copy() for k, v in given.items()})
    expected = expected if isinstance(expected, tuple) else (expected,)
    for out in outs:
        for name in inputs:
            args = {k: v.copy() for k, v in given.items()}
            got = kernel(**args, **{out: args[name]})
            for a, b in zip(got if isinstance(got, tuple) else (got,), expected):
                np.testing.assert_array_equal(a, b, err_msg=f"{out}={name}")
