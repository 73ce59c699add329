"""The variational autoencoder (Kingma & Welling 2013), every gradient written by hand.

The model, in the notation of the course slides:

    prior          p(z) = N(0, I)                                            z in R^Z
    encoder        q(z|x) = N(mu(x), diag(exp(logvar(x))))   one MLP outputs [mu, logvar]
    decoder        p(x|z) = prod_d Bernoulli(x_d; sigmoid(l_d(z)))    likelihood="bernoulli"
                   p(x|z) = N(x; o(z), sigma2 I)                      likelihood="gaussian"

and for each example x the evidence lower bound (ELBO), with a one-sample estimate:

    log p(x) >= ELBO(x) = E_q[log p(x|z)] + E_q[log p(z)] - E_q[log q(z|x)]          (1)
                        = E_q[log p(x|z)] - KL(q(z|x) || p(z))                        (2)
                       ~= log p(x | z = mu + exp(logvar/2) * eps) - KL,  eps ~ N(0, I)  (3)

((3) is Kingma & Welling's estimator B, their eq. (7), with one sample, L = 1, and with the
Gaussian KL (4) in closed form, as in their eq. (10). Equation
numbers in tinyvae are local to each module: (3) here is not (3) of estimators.py.)

(The slides' E[p(X|Z)] + E[p(Z)] - E[q(Z|X)] drops the logs; (1) is the correct form.)
The training loss is the batch mean of  rec + beta * KL,  rec = -log p(x|z) at the sampled z:
nats per example, equal to minus the one-sample estimate (3) when beta = 1. The KL of (2) is
closed form (Kingma & Welling app. B):

    KL = 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j)                               (4)

The reparameterization (3) (Kingma & Welling sec. 2.4) makes z a differentiable function of
(mu, logvar) for fixed eps:

    dz/dmu = 1,   dz/dlogvar = eps * exp(logvar/2) / 2                                   (5)

so the gradient of the loss reaches the encoder through z as well as through the KL, whose
own gradient follows from (4):

    dKL/dmu = mu,   dKL/dlogvar = (exp(logvar) - 1) / 2                                  (6)

In the batch-mean loss, each example's KL enters with weight beta / N, so the encoder's
output gradient is dz * (5) + (beta / N) * (6).
(The kernels compute exp(logvar) - 1 in (4) and (6) as expm1(logvar): near logvar = 0 the terms
nearly cancel.) logvar is not clamped: an encoder that diverges shows an infinite KL.

With likelihood="bernoulli" the data must lie in [0, 1]. For grey levels (not 0/1) the
Bernoulli "log-likelihood" is the usual cross-entropy loss but not a normalised density of
x, so its nats are not log p(x) of the images (the continuous Bernoulli of Loaiza-Ganem &
Cunningham 2019 adds the missing normaliser); binarize the data to compare with the
literature's MNIST numbers.
"""
import numpy as np

from . import kernels
from .data import as_generator
from .errors import TinyVAEError, scale_advice
from .layers import INITS, MLP, mlp_shapes, scratch
from .model import (Config, Model, Setting, check_dtype, check_hidden_dims, check_nonneg_float,
                    check_positive_int, check_seed, one_thread_at_a_time)

LIKELIHOODS = ("bernoulli", "gaussian")
LOG_2PI = np.log(2 * np.pi)


def _sigma2_range(dtype):
    """The Gaussian decoder's variances a model of ``dtype`` can train with: the loss and its
    gradient divide by sigma2, so it stays between sqrt(tiny) and sqrt(max) of the dtype
    (1.1e-19 .. 1.8e19 in float32)."""
    info = np.finfo(dtype)
    return float(np.sqrt(info.tiny)), float(np.sqrt(info.max))


def _unwired(likelihood):
    """The error of a method with no branch for a likelihood listed in LIKELIHOODS (a new one
    needs its -log p(x|z), gradient, mean and sampler in each of them)."""
    return NotImplementedError(f"likelihood {likelihood!r} is listed in LIKELIHOODS, but this method has "
                               "no branch for it")


def _beta_max(dtype):
    """The largest KL weight for ``dtype``: max ** 0.75 (7.9e28 in float32), so beta KL stays finite."""
    return float(np.finfo(dtype).max) ** 0.75


class VAE(Model):
    """A VAE with an MLP encoder q(z|x), an MLP decoder p(x|z) and a N(0, I) prior.

    Arguments:

    input_dim       D, the width of x
    hidden_dims     the encoder's hidden widths, e.g. (400,); () for single affine maps
    latent_dim      Z, the width of z
    likelihood      "bernoulli" (data in [0, 1]: grey values or bits) or "gaussian"
    activation      of every hidden layer: relu (default), leaky_relu, tanh, sigmoid,
                    softplus, identity
    beta            the weight of the KL term in the loss (1: the ELBO; it may change between
                    epochs, ``vae.beta = ...``)
    sigma2          the Gaussian decoder's variance (likelihood="gaussian")
    learn_sigma2    train log sigma2 as a parameter, starting from ``sigma2``
    seed, dtype     of the initial weights; float32 (default) or float64 (gradient checks)
    decoder_hidden_dims, init   see below

    These settings are fixed once the model is built (``vae.latent_dim = 3`` is refused), and
    ``vae.config`` holds them, as ``save`` writes them.

    Parameters (``vae.params``): the encoder ``enc.W{i}``, ``enc.b{i}`` (last layer 2Z wide:
    mu, then logvar), the decoder ``dec.W{i}``, ``dec.b{i}`` (last layer D wide: logits or
    the Gaussian mean o(z)), and ``log_sigma2`` (a scalar) when ``learn_sigma2=True``.
    ``hidden_dims=()`` makes encoder and decoder single affine maps (probabilistic PCA when
    the likelihood is Gaussian). The decoder mirrors the encoder's hidden widths unless
    ``decoder_hidden_dims`` says otherwise. ``init`` picks the initial weights
    (:meth:`tinyvae.layers.MLP.init`): "he" (default) or "uniform", PyTorch's nn.Linear default.
    """

    kind = "vae"
    # settings read from config, fixed when the model is built (beta is a property below)
    input_dim, latent_dim, likelihood, activation, learn_sigma2 = (Setting() for _ in range(5))

    def __init__(self, input_dim, hidden_dims=(128,), latent_dim=2, likelihood="bernoulli",
                 activation="relu", beta=1.0, sigma2=1.0, learn_sigma2=False, seed=0,
                 dtype="float32", decoder_hidden_dims=None, init="he"):
        D = check_positive_int("input_dim", input_dim)
        Z = check_positive_int("latent_dim", latent_dim)
        hidden = check_hidden_dims(hidden_dims)
        dec_hidden = tuple(reversed(hidden)) if decoder_hidden_dims is None else check_hidden_dims(decoder_hidden_dims)
        if likelihood not in LIKELIHOODS:
            hint = {"bce": " (bce is the autoencoder's name for it: use likelihood='bernoulli')",
                    "mse": " (mse is the autoencoder's name for it: use likelihood='gaussian')"}
            raise TinyVAEError(f"unknown likelihood {likelihood!r}: expected {' or '.join(LIKELIHOODS)}"
                               + hint.get(str(likelihood).lower(), ""))
        kernels.activation_code(activation)
        if init not in INITS:
            raise TinyVAEError(f"unknown init {init!r}: expected one of {', '.join(INITS)}")
        if not isinstance(learn_sigma2, (bool, np.bool_)):
            raise TinyVAEError(f"learn_sigma2 must be True or False, got {learn_sigma2!r}")
        if learn_sigma2 and likelihood != "gaussian":
            raise TinyVAEError("learn_sigma2=True needs likelihood='gaussian'")
        self._config = Config(input_dim=D, hidden_dims=hidden, latent_dim=Z, likelihood=likelihood,
                              activation=activation, beta=check_nonneg_float("beta", beta),
                              sigma2=check_nonneg_float("sigma2", sigma2, positive=True),
                              learn_sigma2=bool(learn_sigma2), seed=check_seed(seed),
                              dtype=check_dtype(dtype).name, decoder_hidden_dims=dec_hidden, init=init)
        self.beta = self.config["beta"]                       # checked against the dtype's range
        lo, hi = _sigma2_range(self.config["dtype"])
        if likelihood == "gaussian" and not lo <= self.config["sigma2"] <= hi:
            raise TinyVAEError(f"sigma2={self.config['sigma2']:g} is outside what a {self.config['dtype']} model can "
                               f"train with ({lo:.1e} .. {hi:.1e}: the loss divides by it); choose another "
                               "sigma2 (or, in Python, a model with dtype='float64')")

        enc_sizes, dec_sizes = (D, *hidden, 2 * Z), (Z, *dec_hidden, D)
        shapes = {**mlp_shapes(enc_sizes, "enc."), **mlp_shapes(dec_sizes, "dec.")}
        if self.learn_sigma2:
            shapes["log_sigma2"] = ()
        self._allocate(shapes, self.config["dtype"])
        self.encoder = MLP(enc_sizes, activation, prefix="enc.", params=self.params, grads=self.grads, init=init)
        self.decoder = MLP(dec_sizes, activation, prefix="dec.", params=self.params, grads=self.grads, init=init)
        init_rng = np.random.default_rng([self.config["seed"], 0])   # the initialisation stream
        self.encoder.init(self.params, init_rng)
        self.decoder.init(self.params, init_rng)
        if self.learn_sigma2:
            self.params["log_sigma2"][...] = np.log(self.config["sigma2"])

    # ----------------------------------------------------------------------------------------
    # the pieces of the model

    @property
    def beta(self):
        """The weight of the KL term in the training loss. It may change between epochs (KL
        annealing in an ``epoch_callback``); ``save`` keeps the value it has then."""
        return self.config["beta"]

    @beta.setter
    def beta(self, value):
        beta, top = check_nonneg_float("beta", value), _beta_max(self.config["dtype"])
        if beta > top:
            raise TinyVAEError(f"beta={beta:g} is too large for a {self.config['dtype']} model (at most {top:.1e}: "
                               "beta times the KL and its gradient must stay finite); choose a smaller beta (or, "
                               "in Python, a model with dtype='float64')")
        self.config._set("beta", beta)

    @property
    def sigma2(self):
        """The Gaussian decoder's variance: fixed, or exp(log_sigma2) when learned."""
        if self.learn_sigma2:
            return float(np.exp(self.params["log_sigma2"]))
        return self.config["sigma2"]

    def encode(self, x):
        """q(z|x) = N(mu, diag(exp(logvar))). Inputs: x (N, D). Returns: mu, logvar, both (N, Z)."""
        x = self._data(x)
        e = self.encoder(x)                                    # (N, 2Z)
        return e[:, :self.latent_dim].copy(), e[:, self.latent_dim:].copy()

    def decode(self, z):
        """The mean of p(x|z): Bernoulli probabilities sigmoid(l(z)), or the Gaussian mean o(z).
        Inputs: z (N, Z). Returns: (N, D) in the model's dtype."""
        z = self._input(z, "z", dim=self.latent_dim)
        o = self.decoder(z)                                    # (N, D) logits or means
        if self.likelihood == "bernoulli":
            return kernels.activation(o, "sigmoid")
        if self.likelihood == "gaussian":
            return o
        raise _unwired(self.likelihood)

    def reconstruct(self, x):
        """The reconstruction of x: the mean of p(x|z) at the posterior mean z = mu(x), (N, D)
        (as the autoencoder's ``reconstruct`` is g(f(x)); a draw of z would add noise)."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    def reparameterize(self, mu, logvar, eps):
        """z = mu + exp(logvar/2) * eps, eq. (3); all (N, Z)."""
        mu = self._input(mu, "mu", dim=self.latent_dim)
        logvar = self._input(logvar, "logvar", dim=self.latent_dim)
        eps = self._input(eps, "eps", dim=self.latent_dim)
        if not mu.shape == logvar.shape == eps.shape:
            raise TinyVAEError(f"mu, logvar and eps must have the same shape (N, {self.latent_dim}), got "
                               f"{mu.shape}, {logvar.shape} and {eps.shape}")
        return kernels.reparameterize(mu, logvar, eps)[0]

    def _reconstruction(self, o, x, scale, rows=None, do=None, work=None):
        """rec = -log p(x|z) per example (N,) and scale * d rec / d o (N, D), in one pass."""
        if self.likelihood == "bernoulli":
            return kernels.bernoulli_nll_grad(o, x, scale, rows=rows, dlogits=do, work=work)
        if self.likelihood == "gaussian":
            return kernels.gaussian_nll_grad(o, x, self.sigma2, scale, rows=rows, dmean=do)
        raise _unwired(self.likelihood)

    def _nll(self, o, x):
        """rec = -log p(x|z) per example, without the gradient."""
        if self.likelihood == "bernoulli":
            return kernels.bernoulli_nll(o, x)
        if self.likelihood == "gaussian":
            return kernels.gaussian_nll(o, x, self.sigma2)
        raise _unwired(self.likelihood)

    # ----------------------------------------------------------------------------------------
    # the loss and its gradient

    @one_thread_at_a_time
    def loss_and_grads(self, x, eps):
        """loss = mean_n [rec_n + beta KL_n] and its exact gradient for every parameter.

        Inputs: x (N, D); eps (N, Z), the standard-normal noise of eq. (3), passed in so the
        loss is a deterministic function of the parameters (and can be gradient-checked).
        Returns: loss (float, nats per example) and grads, a dict like ``params``. The arrays
        of ``grads`` are the model's gradient buffers: copy them to keep them past the next call.
        """
        x = self._data(x)
        eps = self._input(eps, "eps", dim=self.latent_dim)
        if eps.shape[0] != x.shape[0]:
            raise TinyVAEError(f"eps must have one row per example: x has {x.shape[0]}, eps {eps.shape[0]}")
        loss, _, _ = self._loss_and_grads(x, eps)
        return loss, self.grads

    def _loss_and_grads(self, x, eps):
        """The forward and backward pass on checked inputs; returns (loss, mean rec, mean KL)."""
        N, Z, ws, dt = x.shape[0], self.latent_dim, self.workspace, self.dtype
        # forward: x -> [mu, logvar] -> z -> o(z) -> rec, KL
        e, enc_cache = self.encoder.forward(x, ws)             # (N, 2Z)
        mu, logvar = e[:, :Z], e[:, Z:]                        # (N, Z) each
        z, kl = kernels.reparameterize(mu, logvar, eps,        # eq. (3) and eq. (4)
                                       z=scratch(ws, "z", (N, Z), dt), kl=scratch(ws, "kl", (N,), dt))
        o, dec_cache = self.decoder.forward(z, ws)             # (N, D) logits l or means o
        # Bernoulli: the decoder's sigmoid is not applied here but folded into the loss, which
        # takes the logits l (stabler): d rec / d l = sigmoid(l) - x
        rec, do = self._reconstruction(o, x, 1.0 / N,          # do = d loss / d o   (N, D)
                                       rows=scratch(ws, "rec", (N,), dt), do=scratch(ws, "do", o.shape, dt),
                                       work=scratch(ws, "rec_terms", o.shape, dt))
        rec_mean, kl_mean = float(np.mean(rec, dtype=np.float64)), float(np.mean(kl, dtype=np.float64))
        loss = rec_mean + self.beta * kl_mean

        # backward: d loss / d o -> dz -> [dmu, dlogvar] -> encoder
        dz = self.decoder.backward(do, dec_cache, workspace=ws)               # (N, Z)
        de = scratch(ws, "de", (N, 2 * Z), dt)                                # (N, 2Z)
        kernels.reparameterize_backward(dz, mu, logvar, eps, self.beta / N,   # eqs. (5), (6)
                                        dmu=de[:, :Z], dlogvar=de[:, Z:])
        self.encoder.backward(de, enc_cache, need_dx=False, workspace=ws)
        if self.learn_sigma2:
            # rec_n = SSE_n / (2 sigma2) + D/2 log(2 pi sigma2), so (the KL has no sigma2)
            # d rec_n / d log sigma2 = -SSE_n / (2 sigma2) + D/2
            D, s2 = self.input_dim, self.sigma2
            half_sse_over_s2 = rec_mean - 0.5 * D * np.log(2 * np.pi * s2)   # mean_n SSE_n/(2 s2)
            self.grads["log_sigma2"][...] = -half_sse_over_s2 + 0.5 * D
        return loss, rec_mean, kl_mean

    @one_thread_at_a_time
    def training_loss_and_grads(self, x, rng):
        """One training step's loss and gradients, eps drawn from ``rng`` (used by ``fit``).

        ``x`` must already be a checked (N, D) array of the model's dtype (``fit`` checks it; for
        a loss of your own data use ``loss_and_grads``). Returns
        (loss, grads, {"rec": mean rec, "kl": mean KL})."""
        rng = as_generator(rng)
        eps = scratch(self.workspace, "eps", (x.shape[0], self.latent_dim), self.dtype)
        rng.standard_normal(dtype=self.dtype, out=eps)
        loss, rec, kl = self._loss_and_grads(x, eps)
        return loss, self.grads, {"rec": rec, "kl": kl}

    # ----------------------------------------------------------------------------------------
    # evaluation

    def elbo(self, x, eps=None, rng=None):
        """The one-sample ELBO of eq. (3) for each example, (N,), in nats (beta plays no part).

        Without ``eps`` the noise is drawn from ``rng``, a NumPy Generator or an integer seed
        (default: seed 0, so repeated calls agree)."""
        x = self._data(x)
        mu, logvar = self._split(self.encoder(x))                 # (N, Z) each
        eps = self._noise(eps, rng, mu.shape)                      # (N, Z)
        z, kl = kernels.reparameterize(mu, logvar, eps)            # (N, Z), (N,)
        return -(self._nll(self.decoder(z), x) + kl).astype(np.float64)

    def evaluate(self, x, rng=None, batch_size=1000):
        """Mean loss terms over ``x``: {"loss": mean(rec + beta KL), "rec": ..., "kl": ...}.

        rec (and so loss) is the one-sample Monte Carlo estimate (3): one z ~ q(z|x) per
        example, drawn with ``rng``, a NumPy Generator or an integer seed (default: seed 0); the
        KL is exact."""
        x = self._data(x)
        batch_size = check_positive_int("batch_size", batch_size)
        rng = as_generator(0 if rng is None else rng)
        rec_sum = kl_sum = 0.0
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]                           # (n, D)
            mu, logvar = self._split(self.encoder(xb))                 # (n, Z) each
            eps = rng.standard_normal(mu.shape).astype(self.dtype, copy=False)
            z, kl = kernels.reparameterize(mu, logvar, eps)            # (n, Z), (n,)
            rec_sum += float(np.sum(self._nll(self.decoder(z), xb), dtype=np.float64))
            kl_sum += float(np.sum(kl, dtype=np.float64))
        n = x.shape[0]
        return {"loss": (rec_sum + self.beta * kl_sum) / n, "rec": rec_sum / n, "kl": kl_sum / n}

    def log_likelihood(self, x, k=1000, seed=0, max_rows=None, return_elbo=False, progress=False):
        """Importance-weighted estimate of log p(x) per example, (N,) (Burda et al. 2015):

            log p(x) ~= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x)

        The estimate is random. Its expectation L_k is a lower bound on log p(x) that rises with
        k and tends to log p(x) for bounded weights (Burda et al., thm. 1); L_1 is the ELBO (1),
        with the KL sampled here rather than the closed form (4). Computed with a running
        log-sum-exp over chunks of examples and samples, so memory stays bounded (``max_rows``
        decoder rows at a time) whatever N and k are.

        The draws depend on the chunking of the examples, so the same ``seed`` with a
        ``max_rows`` that splits the examples otherwise gives other draws (an estimate of the
        same quantity); splitting only the k samples keeps them.

        With ``return_elbo``, also the mean of the same k log-weights, (N,): a k-sample estimate
        of the ELBO. By Jensen's inequality (log of a mean >= mean of the logs) it is never above
        the importance-weighted estimate from the same draws, for every example and every k (up
        to rounding, about 1e-13, when the k weights are all but equal).

        ``seed``: an integer (or a list of them), or a NumPy Generator, which the draws advance.
        ``progress``: a tqdm bar over the N k draws (on a terminal or in a notebook): k = 5000
        for 1000 images of 784 pixels takes minutes."""
        x = self._data(x)
        k = check_positive_int("k", k)
        rng = _generator(seed)
        if max_rows is not None:
            max_rows = check_positive_int("max_rows", max_rows)
        N, Z = x.shape[0], self.latent_dim
        widest = max(max(self.decoder.sizes), max(self.encoder.sizes))
        max_rows = max_rows or max(1, (1 << 22) // widest)            # ~16-32 MB per buffer
        n_chunk = max(1, min(N, max_rows))
        k_chunk = max(1, min(k, max_rows // n_chunk))
        out, elbo = np.empty(N, dtype=np.float64), np.empty(N, dtype=np.float64)
        from tqdm import tqdm
        from .train import _bar_off
        bar = tqdm(total=N * k, unit="draw", unit_scale=True, leave=False, dynamic_ncols=True,
                   desc=f"log p(x), k={k}", disable=_bar_off(progress))
        for s in range(0, N, n_chunk):
            xb = x[s:s + n_chunk]                                          # (n, D)
            n = xb.shape[0]
            mu, logvar = self._split(self.encoder(xb))                     # (n, Z)
            run_max, run_sum = np.full(n, -np.inf), np.zeros(n)            # running log-sum-exp
            sum_log_w = np.zeros(n)                                        # for the ELBO estimate
            for done in range(0, k, k_chunk):
                kc = min(k_chunk, k - done)
                eps = rng.standard_normal((kc, n, Z))                      # (kc, n, Z)
                z = mu + np.exp(0.5 * logvar) * eps                        # (kc, n, Z)
                # log q(z|x) = -1/2 sum_j (log 2 pi + logvar_j + (z_j - mu_j)^2 / exp(logvar_j)),
                # and (z_j - mu_j)^2 / exp(logvar_j) = eps_j^2
                log_q = -0.5 * np.sum(LOG_2PI + logvar + eps**2, axis=-1)  # log q(z|x)  (kc, n)
                log_pz = -0.5 * np.sum(LOG_2PI + z**2, axis=-1)            # log p(z)    (kc, n)
                o = self.decoder(z.reshape(kc * n, Z).astype(self.dtype))  # (kc n, D)
                log_px_z = -self._nll(o, np.tile(xb, (kc, 1))).reshape(kc, n)
                log_w = log_px_z.astype(np.float64) + log_pz - log_q      # (kc, n)
                sum_log_w += log_w.sum(axis=0)
                new_max = np.maximum(run_max, log_w.max(axis=0))
                shift = np.where(np.isfinite(new_max), new_max, 0.0)  # all weights 0 so far: any shift
                run_sum = run_sum * np.exp(run_max - shift) + np.exp(log_w - shift).sum(axis=0)
                run_max = new_max
                bar.update(kc * n)
            with np.errstate(divide="ignore"):                             # every weight 0: -inf
                out[s:s + n] = run_max + np.log(run_sum) - np.log(k)
            elbo[s:s + n] = sum_log_w / k
        bar.close()
        return (out, elbo) if return_elbo else out

    def sample(self, n, seed=0, mean=True):
        """n new examples, (n, D): z ~ N(0, I), then the mean of p(x|z) (or a draw from it if not mean).

        The same ``seed`` (default 0) gives the same examples: pass seed=1, 2, ... for others, or
        one NumPy Generator, ``rng = np.random.default_rng(0)``, to every call (as ``elbo``'s ``rng``)."""
        n = check_positive_int("n", n)
        rng = _generator(seed)
        z = rng.standard_normal((n, self.latent_dim))                 # (n, Z)
        m = self.decode(z)                                             # (n, D)
        if mean:
            return m
        if self.likelihood == "bernoulli":
            return (rng.uniform(size=m.shape) < m).astype(self.dtype)
        if self.likelihood == "gaussian":
            return (m + np.sqrt(self.sigma2) * rng.standard_normal(m.shape)).astype(self.dtype)
        raise _unwired(self.likelihood)

    def kl_per_dimension(self, x):
        """Mean over x of KL(q(z_j|x) || N(0, 1)) for each latent dimension j, (Z,).

        Dimensions with KL near 0 carry no information about x: posterior collapse."""
        mu, logvar = self.encode(x)
        # exp(lv) - 1 as expm1(lv): near lv = 0 (a collapsed dimension) the terms nearly cancel
        return (0.5 * (mu**2 + np.expm1(logvar) - logvar)).mean(axis=0).astype(np.float64)

    def latent_activity(self, x):
        """Var over x of E_q[z_j] = mu_j(x), per latent dimension (Burda et al. 2015), (Z,)."""
        mu, _ = self.encode(x)
        return mu.astype(np.float64).var(axis=0)

    def active_units(self, x, threshold=0.01):
        """How many latent dimensions are active: activity above ``threshold`` (0.01)."""
        threshold = check_nonneg_float("threshold", threshold)
        return int(np.sum(self.latent_activity(x) > threshold))

    # ----------------------------------------------------------------------------------------
    # input handling

    def _data(self, x):
        x = self._input(x)
        if self.likelihood == "bernoulli" and x.size and (x.min() < 0 or x.max() > 1):
            lo, hi = float(x.min()), float(x.max())
            raise TinyVAEError(f"a Bernoulli decoder needs data in [0, 1], got values in [{lo:g}, {hi:g}]; "
                               f"{scale_advice(lo, hi)}, or use likelihood='gaussian'")
        return x

    def _split(self, e):
        return e[:, :self.latent_dim], e[:, self.latent_dim:]

    def _noise(self, eps, rng, shape):
        if eps is not None and rng is not None:
            raise TinyVAEError("give eps (the noise itself) or rng (to draw it), not both")
        if eps is None:
            rng = as_generator(0 if rng is None else rng)
            return rng.standard_normal(shape).astype(self.dtype, copy=False)
        eps = self._input(eps, "eps", dim=self.latent_dim)
        if eps.shape != shape:
            raise TinyVAEError(f"eps must have shape {shape}, got {eps.shape}")
        return eps


# --------------------------------------------------------------------------------------------
# the gradient-check table of ``tinyvae gradcheck --model vae``

def _generator(seed):
    """A NumPy Generator given as ``seed`` is used as it is (its draws advance it); an integer,
    or a list of them, seeds a new one."""
    if isinstance(seed, np.random.Generator):
        return seed
    try:
        return np.random.default_rng(check_seed(seed, allow_sequence=True))
    except TinyVAEError:
        raise TinyVAEError(f"seed must be a non-negative integer (or a list of them) or a NumPy Generator, "
                           f"got {seed!r}") from None


def gradcheck_configs():
    """(name, VAE keyword arguments) for every configuration the gradient checks cover."""
    base = dict(input_dim=5, hidden_dims=(6,), latent_dim=3)
    configs = [(f"bernoulli, 1 hidden, {a}", dict(base, activation=a)) for a in kernels.ACTIVATIONS]
    configs += [
        ("bernoulli, 0 hidden (linear)", dict(base, hidden_dims=())),
        ("bernoulli, 2 hidden 7-4 / decoder 3-6", dict(base, hidden_dims=(7, 4), decoder_hidden_dims=(3, 6), activation="tanh")),
        ("gaussian sigma2=0.3 fixed, 1 hidden", dict(base, likelihood="gaussian", sigma2=0.3, activation="softplus")),
        ("gaussian sigma2 learned, 2 hidden", dict(base, hidden_dims=(7, 4), likelihood="gaussian", learn_sigma2=True, sigma2=0.5, activation="leaky_relu")),
        ("gaussian, 0 hidden, sigma2 learned", dict(base, hidden_dims=(), likelihood="gaussian", learn_sigma2=True)),
        ("bernoulli, beta=0.3", dict(base, beta=0.3, activation="sigmoid")),
        ("gaussian, beta=4, 2 hidden", dict(base, hidden_dims=(4, 7), likelihood="gaussian", beta=4.0, activation="tanh")),
    ]
    return configs


def gradcheck_problem(config, n=4, seed=0):
    """A float64 VAE and a fixed (x, eps) for a gradient check of ``config``.

    The parameters get random nonzero biases, so no relu unit sits exactly on its kink."""
    rng = np.random.default_rng(seed)
    vae = VAE(**dict(config, dtype="float64", seed=seed))
    for name, p in vae.params.items():
        if name.split(".")[-1].startswith("b"):
            p[...] = rng.uniform(0.05, 0.5, p.shape) * rng.choice([-1, 1], p.shape)
    x = rng.uniform(0, 1, (n, vae.input_dim))
    eps = rng.standard_normal((n, vae.latent_dim))
    return vae, x, eps


def gradcheck_suite(seed=0):
    from .gradcheck import check_model
    reports = []
    for name, config in gradcheck_configs():
        vae, x, eps = gradcheck_problem(config, seed=seed)
        reports.append((name, check_model(vae, x, eps)))
    return reports
