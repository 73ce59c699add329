"""Deterministic autoencoders (Goodfellow et al., ch. 14), every gradient written by hand.

An encoder h = f(x) and a decoder r = g(h), both MLPs, trained to minimise

    L(x, g(f(x)))                                             undercomplete AE      (14.1)
    L(x, g(f(x))) + Omega(h)                                  sparse AE             (14.2)
    L(x, g(f(x))) + Omega(h, x)                               penalizing derivatives (14.10)

with, per example (row vectors; D inputs, C code units):

    L = 1/2 sum_d (r_d - x_d)^2                                 loss="mse"
    L = sum_d softplus(l_d) - x_d l_d,   r = sigmoid(l)         loss="bce" (Bernoulli on logits l)

and the regularizers of the chapter:

    sparse       Omega(h) = lambda_1 sum_j |h_j|                     sec. 14.2.1, sparse_l1
    contractive  Omega(h, x) = lambda_c ||dh/dx||_F^2                eq. 14.18, contractive
    denoising    L(x, g(f(x_tilde))), x_tilde ~ C(x_tilde | x)       eq. 14.9, secs. 14.2.2, 14.5

A denoising autoencoder compares the reconstruction of the *corrupted* input x_tilde with the
*clean* x. ``loss_and_grads(x, x_input)`` takes x_tilde explicitly as ``x_input``, so the loss
is a deterministic function of the parameters; during training ``corrupt`` draws it (masking
noise with ``mask_prob``, then Gaussian noise with ``noise_std``).

The contractive penalty is implemented exactly for a single-layer encoder (``hidden_dims=()``),
h = f(a), a = x W + b, W (D, C) (Rifai et al. 2011). Its Jacobian is J_jd = dh_j/dx_d =
f'(a_j) W_dj, so

    ||J||_F^2 = sum_j f'(a_j)^2 s_j,        s_j = sum_d W_dj^2                            (1)

and, with f'' the activation's second derivative (written through h, like f'),

    d||J||^2 / dW_dj (through s_j)   = 2 f'(a_j)^2 W_dj                                   (2)
    d||J||^2 / da_j                  = 2 f'(a_j) f''(a_j) s_j                              (3)

where (3) reaches W and b through a = x W + b like any other gradient of a. For relu,
leaky_relu and identity f'' = 0 and only (2) remains (identity: lambda_c ||W||_F^2, weight decay).

The L1 term has a kink at h_j = 0, where the gradient uses the subgradient sign(0) = 0 (a
relu code that is exactly 0 stays 0 under a small perturbation, so finite differences agree;
gradient checks keep every other code away from 0).

The loss is the batch mean of the per-example  L + Omega  (squared-error units or nats per
example), and ``grads`` is its exact gradient. Despite its name, "mse" is half the *sum* of
squared errors over the D inputs, not a mean over them: -log N(x; r, I) minus the constant
D/2 log(2 pi), a Gaussian decoder with unit variance.
"""
import numpy as np

from . import kernels
from .data import as_generator
from .errors import TinyVAEError, scale_advice
from .layers import MLP, mlp_shapes, scratch
from .model import (Config, Model, Setting, check_dtype, check_hidden_dims, check_nonneg_float,
                    check_positive_int, check_seed, one_thread_at_a_time)

LOSSES = ("mse", "bce")


class Autoencoder(Model):
    """An autoencoder h = f(x), r = g(h) with optional sparse, contractive and denoising terms.

    Arguments:

    input_dim       D, the width of x
    hidden_dims     the encoder's hidden widths (the decoder mirrors them); () for one layer
    code_dim        C, the width of the code h
    activation      of every hidden layer and of the code (default relu; a 2-unit ReLU code can
                    die, which is why ``tinyvae train --model ae`` uses tanh)
    loss            "mse", L = 1/2 sum_d (r_d - x_d)^2, or "bce" for data in [0, 1]
    sparse_l1       lambda_1 of the sparse penalty lambda_1 sum_j |h_j| (sec. 14.2.1); 0 = off
    contractive     lambda_c of the contractive penalty lambda_c ||dh/dx||_F^2 (eq. 14.18); 0 =
                    off; only with ``hidden_dims=()``, where it is exact
    noise_std       denoising: the std of the Gaussian noise added to x in training (eq. 14.9)
    mask_prob       denoising: the probability of zeroing each input in training, below 1
    tied            tied weights, W_d = W_e^T: the decoder has only its bias (with
                    ``hidden_dims=()``); a contractive penalty cannot then be met by shrinking
                    the encoder and growing the decoder (Rifai et al. 2011; sec. 14.7)
    seed, dtype     of the initial weights; float32 (default) or float64 (gradient checks)

    These settings are fixed once the model is built, and ``ae.config`` holds them.

    Parameters (``ae.params``): the encoder ``enc.W{i}``, ``enc.b{i}`` (last layer C wide; the
    code h passes through ``activation``: use ``identity`` for a linear model) and the decoder
    ``dec.W{i}``, ``dec.b{i}`` (hidden widths mirrored, last layer D wide and linear: the
    reconstruction r for ``mse``, the logits l for ``bce``); with ``tied=True`` only ``dec.b0``,
    the decoder's weights being ``enc.W0.T``, and ``grads["enc.W0"]`` the sum of both uses.

    ``hidden_dims=()`` with ``activation="identity"`` and ``loss="mse"`` is the linear
    autoencoder: at the minimum of the loss its decoder weights span the principal subspace
    of the (centred, since the biases absorb the mean) data, like PCA (sec. 14.1).
    ``transform`` / ``inverse_transform`` are ``encode`` / ``decode``, so an autoencoder can
    stand beside ``sklearn.decomposition.PCA``.
    """

    kind = "ae"
    # settings read from config, fixed when the model is built
    input_dim, code_dim, activation, loss = (Setting() for _ in range(4))
    sparse_l1, contractive, noise_std, mask_prob, tied = (Setting() for _ in range(5))

    def __init__(self, input_dim, hidden_dims=(128,), code_dim=8, activation="relu", loss="mse",
                 sparse_l1=0.0, contractive=0.0, noise_std=0.0, mask_prob=0.0, seed=0,
                 dtype="float32", tied=False):
        D = check_positive_int("input_dim", input_dim)
        C = check_positive_int("code_dim", code_dim)
        hidden = check_hidden_dims(hidden_dims)
        if activation not in kernels.ACTIVATIONS:
            raise TinyVAEError(f"unknown activation {activation!r}: expected one of "
                               f"{', '.join(kernels.ACTIVATIONS)}")
        if loss not in LOSSES:
            hint = {"bernoulli": " (the VAE's name for bce)", "gaussian": " (the VAE's name for mse)"}
            raise TinyVAEError(f"unknown loss {loss!r}{hint.get(str(loss).lower(), '')}: expected 'mse' "
                               "(real-valued data) or 'bce' (data in [0, 1])")
        contractive = check_nonneg_float("contractive", contractive)
        if contractive and hidden:
            raise TinyVAEError(f"the contractive penalty is exact only for a single-layer encoder: "
                               f"use hidden_dims=() with contractive={contractive:g}, or set "
                               f"contractive=0 to keep hidden_dims={hidden}")
        mask_prob = check_nonneg_float("mask_prob", mask_prob)
        if mask_prob >= 1:
            raise TinyVAEError(f"mask_prob is the probability of zeroing an input and must be "
                               f"below 1, got {mask_prob!r}")
        if not isinstance(tied, (bool, np.bool_)):
            raise TinyVAEError(f"tied must be True or False, got {tied!r}")
        if tied and hidden:
            raise TinyVAEError(f"tied weights (W_d = W_e^T) need one layer on each side: use hidden_dims=() "
                               f"with tied=True, or tied=False to keep hidden_dims={hidden}")
        self._config = Config(input_dim=D, hidden_dims=hidden, code_dim=C, activation=activation,
                              loss=loss, sparse_l1=check_nonneg_float("sparse_l1", sparse_l1),
                              contractive=contractive,
                              noise_std=check_nonneg_float("noise_std", noise_std),
                              mask_prob=mask_prob, seed=check_seed(seed), dtype=check_dtype(dtype).name,
                              tied=bool(tied))

        enc_sizes, dec_sizes = (D, *hidden, C), (C, *reversed(hidden), D)
        dec_shapes = mlp_shapes(dec_sizes, "dec.")
        if tied:
            del dec_shapes["dec.W0"]                          # the decoder reads enc.W0.T instead
        self._allocate({**mlp_shapes(enc_sizes, "enc."), **dec_shapes}, self.config["dtype"])
        self.encoder = MLP(enc_sizes, activation, final_activation=activation, prefix="enc.",
                           params=self.params, grads=self.grads)
        init_rng = np.random.default_rng([self.config["seed"], 0])   # the initialisation stream
        self.encoder.init(self.params, init_rng)
        if tied:
            # W_d = W_e^T, a view: the decoder's weight gradient dL/dW_d (C, D) goes to its own
            # buffer and is added, transposed, to dL/dW_e after the backward pass
            self._tied_dW = np.zeros((C, D), dtype=self.dtype)
            self.decoder = MLP(dec_sizes, activation, prefix="dec.",
                               params={"dec.W0": self.params["enc.W0"].T, "dec.b0": self.params["dec.b0"]},
                               grads={"dec.W0": self._tied_dW, "dec.b0": self.grads["dec.b0"]})
        else:
            self.decoder = MLP(dec_sizes, activation, prefix="dec.", params=self.params, grads=self.grads)
            self.decoder.init(self.params, init_rng)

    # ----------------------------------------------------------------------------------------
    # the pieces of the model

    @property
    def denoising(self):
        """True when training corrupts the input (``noise_std > 0`` or ``mask_prob > 0``)."""
        return self.noise_std > 0 or self.mask_prob > 0

    def encode(self, x):
        """The code h = f(x). Inputs: x (N, D). Returns: h (N, C)."""
        return self.encoder(self._input(x))

    def decode(self, h):
        """The reconstruction r = g(h): sigmoid of the logits for ``bce``. h (N, C) -> (N, D)."""
        h = self._input(h, "h", dim=self.code_dim)
        o = self.decoder(h)                                    # (N, D) r, or logits l
        return kernels.activation(o, "sigmoid") if self.loss == "bce" else o

    def reconstruct(self, x):
        """r = g(f(x)), (N, D)."""
        return self.decode(self.encode(x))

    transform = encode             # the scikit-learn names, as in sklearn.decomposition.PCA
    inverse_transform = decode

    def fit(self, x, **kwargs):
        """Train with :func:`tinyvae.fit` (same keyword arguments); returns ``self``.

        The history is kept in ``self.history_``, so ``ae.fit(X).transform(X)`` reads like PCA."""
        from .train import fit
        self.history_ = fit(self, x, **kwargs)
        return self

    def fit_transform(self, x, **kwargs):
        """``fit(x, **kwargs)`` then ``transform(x)``."""
        return self.fit(x, **kwargs).transform(x)

    def corrupt(self, x, rng):
        """Draw x_tilde ~ C(x_tilde | x) (sec. 14.5): masking noise, then Gaussian noise.

        Each coordinate is zeroed with probability ``mask_prob`` (x_tilde = m * x, m_d ~
        Bernoulli(1 - mask_prob)), then x_tilde += noise_std * eps, eps ~ N(0, I).
        Inputs: x (N, D), ``rng`` a NumPy Generator or an integer seed. Returns: x_tilde (N, D),
        a new array."""
        return self._corrupt(self._input(x), as_generator(rng), workspace=None)

    def _corrupt(self, x, rng, workspace):
        """:meth:`corrupt` on a checked x, into (reused) ``workspace`` buffers when given."""
        dt = self.dtype
        x_tilde = scratch(workspace, "ae.x_tilde", x.shape, dt)
        x_tilde[...] = x
        if self.mask_prob > 0:
            u = rng.random(dtype=dt, out=scratch(workspace, "ae.u", x.shape, dt))  # U(0, 1)
            x_tilde *= u >= self.mask_prob                        # keep with prob. 1 - mask_prob
        if self.noise_std > 0:
            eps = rng.standard_normal(dtype=dt, out=scratch(workspace, "ae.eps", x.shape, dt))
            x_tilde += self.noise_std * eps
        return x_tilde

    def jacobian(self, x):
        """The encoder's Jacobian dh/dx for each example, (N, C, D), for any depth.

        Forward mode through the layers: with J_0 = dx/dx = I and, as in lesson 1's eq. (4),
        a_i = h_i W_i + b_i and h_{i+1} = f(a_i), J_{i+1} = f'(a_i) * (W_i^T J_i), f' scaling
        the rows. For a single-layer encoder this is J = f'(a) * W^T, whose squared Frobenius
        norm is eq. (1)."""
        x = self._input(x)
        _, hs = self.encoder.forward(x)                               # h_0 = x, ..., h_L = h
        J = None
        for i in range(self.encoder.n_layers):
            W, _, kind = self.encoder.layer(i)                        # W (d_i, d_{i+1})
            fp = kernels.activation_deriv(hs[i + 1], kind)            # f'(a_i), from h_{i+1}  (N, d_{i+1})
            WtJ = W.T[None] if J is None else np.einsum("ij,nid->njd", W, J)   # W^T J_i
            J = fp[:, :, None] * WtJ                                  # (N, d_{i+1}, D)
        return J

    # ----------------------------------------------------------------------------------------
    # the loss and its gradient

    @one_thread_at_a_time
    def loss_and_grads(self, x, x_input=None):
        """loss = mean_n [L(x_n, g(f(x_input_n))) + Omega_n] and its exact gradient.

        Inputs: x (N, D), the clean target; x_input (N, D), the encoder's input, e.g. a
        corrupted x_tilde for a denoising autoencoder (default: x itself). The penalties are
        evaluated at the code h = f(x_input). Returns: loss (float) and grads, a dict like
        ``params``. The arrays of ``grads`` are the model's gradient buffers: copy them to keep
        them past the next call."""
        x = self._target(x)
        if x_input is None:
            x_input = x
        else:
            x_input = self._input(x_input, "x_input")
            if x_input.shape != x.shape:
                raise TinyVAEError(f"x_input must have the shape of x, {x.shape}, got {x_input.shape}")
        loss, _, _ = self._loss_and_grads(x, x_input)
        return loss, self.grads

    def _loss_and_grads(self, x, x_input):
        """The forward and backward pass on checked inputs; returns (loss, mean L, mean Omega)."""
        N, ws, dt = x.shape[0], self.workspace, self.dtype
        # forward: x_input -> h = f(x_input) -> o = g(h) -> L(x, o)    eq. 14.1 (eq. 14.9 if denoising)
        h, enc_cache = self.encoder.forward(x_input, ws)                      # (N, C)
        o, dec_cache = self.decoder.forward(h, ws)                            # (N, D) r or l
        rec, do = self._reconstruction(o, x, 1.0 / N, ws)                     # (N,), (N, D)
        rec_mean = float(np.mean(rec, dtype=np.float64))

        # backward: dloss/do -> dloss/dh (+ the sparse penalty's) -> encoder      eq. 14.2
        dh = self.decoder.backward(do, dec_cache, workspace=ws)               # (N, C)
        penalty = 0.0
        if self.sparse_l1 > 0:                                                # sec. 14.2.1
            lam_1 = self.sparse_l1
            penalty += lam_1 * float(np.mean(np.abs(h).sum(axis=1), dtype=np.float64))
            sign_h = np.sign(h, out=scratch(ws, "ae.sign_h", h.shape, dt))    # d|h|/dh  (N, C)
            dh += (lam_1 / N) * sign_h
        self.encoder.backward(dh, enc_cache, need_dx=False, workspace=ws)
        if self.tied:                                                         # W_d = W_e^T
            self.grads["enc.W0"] += self._tied_dW.T                           # dL/dW_e += (dL/dW_d)^T

        if self.contractive > 0:                                              # eq. 14.18
            lam_c, W = self.contractive, self.params["enc.W0"]                # W (D, C)
            fp = kernels.activation_deriv(h, self.activation)                 # f'(a)   (N, C)
            fpp = kernels.activation_second(h, self.activation)               # f''(a)  (N, C)
            s = np.sum(W * W, axis=0)                                         # s_j     (C,)
            penalty += lam_c * float(np.mean(fp**2 @ s, dtype=np.float64))    # eq. (1)
            dW, db = self.grads["enc.W0"], self.grads["enc.b0"]
            dW += (2 * lam_c) * W * np.mean(fp**2, axis=0)                    # eq. (2), (D, C)
            da = (2 * lam_c / N) * fp * fpp * s                               # eq. (3), (N, C)
            dW += x_input.T @ da                                              # a = x W + b
            db += da.sum(axis=0)
        return rec_mean + penalty, rec_mean, penalty

    def _reconstruction(self, o, x, scale, ws=None):
        """L per example (N,) and scale * dL/do (N, D) for the decoder output o."""
        N, dt = x.shape[0], self.dtype
        if self.loss == "bce":            # o are logits l; dL/dl = sigmoid(l) - x
            return kernels.bernoulli_nll_grad(o, x, scale, rows=scratch(ws, "ae.rec", (N,), dt),
                                              dlogits=scratch(ws, "ae.do", o.shape, dt),
                                              work=scratch(ws, "ae.rec_terms", o.shape, dt))
        r_minus_x = np.subtract(o, x, out=scratch(ws, "ae.do", o.shape, dt))   # (N, D)
        rec = 0.5 * np.einsum("nd,nd->n", r_minus_x, r_minus_x)                # 1/2 ||r - x||^2
        return rec, np.multiply(r_minus_x, scale, out=r_minus_x)               # scale * dL/dr, dL/dr = r - x

    @one_thread_at_a_time
    def training_loss_and_grads(self, x, rng):
        """One training step's loss and gradients (used by ``fit``).

        ``x`` must already be a checked (N, D) array of the model's dtype (``fit`` checks it; for
        a loss of your own data use ``loss_and_grads``). A denoising model draws x_tilde from
        ``rng`` (see :meth:`corrupt`) into a reused buffer. Returns
        (loss, grads, {"rec": mean L, "penalty": mean Omega})."""
        rng = as_generator(rng)
        if self.loss == "bce":
            self._check_unit_interval(x)
        x_input = x
        if self.denoising:
            x_input = self._corrupt(x, rng, self.workspace)
        loss, rec, penalty = self._loss_and_grads(x, x_input)
        return loss, self.grads, {"rec": rec, "penalty": penalty}

    # ----------------------------------------------------------------------------------------
    # evaluation

    def loss_terms(self, x, x_input=None):
        """Per-example reconstruction loss L and penalty Omega, both (N,), without gradients."""
        x = self._target(x)
        x_input = x if x_input is None else self._input(x_input, "x_input")
        if x_input.shape != x.shape:
            raise TinyVAEError(f"x_input must have the shape of x, {x.shape}, got {x_input.shape}")
        h, _ = self.encoder.forward(x_input)                               # (N, C)
        o, _ = self.decoder.forward(h)                                     # (N, D)
        if self.loss == "bce":
            rec = kernels.bernoulli_nll(o, x)
        else:
            rec = 0.5 * np.sum((o - x) ** 2, axis=1)
        penalty = np.zeros(x.shape[0], dtype=np.float64)
        if self.sparse_l1 > 0:
            penalty += self.sparse_l1 * np.abs(h).sum(axis=1)
        if self.contractive > 0:
            W = self.params["enc.W0"]
            fp = kernels.activation_deriv(h, self.activation)
            penalty += self.contractive * (fp**2 @ np.sum(W * W, axis=0))    # eq. (1)
        return rec.astype(np.float64), penalty

    def evaluate(self, x, rng=None, batch_size=1000):
        """Mean loss terms on the clean input: {"loss": mean(L + Omega), "rec": ..., "penalty": ...}.

        ``rng`` is accepted for the model protocol and unused: the evaluation is deterministic."""
        x = self._target(x)
        batch_size = check_positive_int("batch_size", batch_size)
        rec_sum = pen_sum = 0.0
        for start in range(0, x.shape[0], batch_size):
            rec, pen = self.loss_terms(x[start:start + batch_size])
            rec_sum, pen_sum = rec_sum + float(rec.sum()), pen_sum + float(pen.sum())
        n = x.shape[0]
        return {"loss": (rec_sum + pen_sum) / n, "rec": rec_sum / n, "penalty": pen_sum / n}

    # ----------------------------------------------------------------------------------------
    # input handling

    def _target(self, x):
        x = self._input(x)
        if self.loss == "bce":
            self._check_unit_interval(x)
        return x

    @staticmethod
    def _check_unit_interval(x):
        if x.size and (x.min() < 0 or x.max() > 1):
            lo, hi = float(x.min()), float(x.max())
            raise TinyVAEError(f"loss='bce' needs data in [0, 1], got values in [{lo:g}, {hi:g}]; "
                               f"{scale_advice(lo, hi)}, or use loss='mse'")


# --------------------------------------------------------------------------------------------
# the gradient-check table of ``tinyvae gradcheck --model ae``

def gradcheck_configs():
    """(name, Autoencoder keyword arguments) for every configuration the gradient checks cover."""
    base = dict(input_dim=5, hidden_dims=(6,), code_dim=3)
    single = dict(base, hidden_dims=())
    acts = kernels.ACTIVATIONS
    configs = [(f"mse, 1 hidden, {a}", dict(base, activation=a)) for a in acts]
    configs += [
        ("bce, 1 hidden, relu", dict(base, loss="bce")),
        ("bce, 1 hidden, sigmoid", dict(base, loss="bce", activation="sigmoid")),
        ("mse, 0 hidden, identity (linear)", dict(single, activation="identity")),
        ("bce, 0 hidden, tanh", dict(single, loss="bce", activation="tanh")),
        ("mse, 2 hidden 7-4, tanh", dict(base, hidden_dims=(7, 4), activation="tanh")),
        ("bce, 2 hidden 4-7, leaky_relu", dict(base, hidden_dims=(4, 7), loss="bce", activation="leaky_relu")),
        ("sparse l1=0.3, 1 hidden, relu", dict(base, sparse_l1=0.3)),
        ("sparse l1=0.3, 1 hidden, tanh", dict(base, sparse_l1=0.3, activation="tanh")),
        ("sparse l1=0.5, 2 hidden, softplus, bce", dict(base, hidden_dims=(7, 4), sparse_l1=0.5,
                                                        activation="softplus", loss="bce")),
        ("denoising noise_std=0.3, mse, tanh", dict(base, noise_std=0.3, activation="tanh")),
        ("denoising mask_prob=0.4, bce, relu", dict(base, mask_prob=0.4, loss="bce")),
    ]
    configs += [(f"contractive=0.7, 0 hidden, {a}", dict(single, contractive=0.7, activation=a)) for a in acts]
    configs += [
        ("contractive=0.7, 0 hidden, sigmoid, bce", dict(single, contractive=0.7, activation="sigmoid", loss="bce")),
        ("sparse + contractive, tanh, denoising", dict(single, sparse_l1=0.3, contractive=0.5,
                                                       activation="tanh", noise_std=0.3)),
        ("sparse + contractive, softplus, bce", dict(single, sparse_l1=0.3, contractive=0.5,
                                                     activation="softplus", loss="bce", mask_prob=0.3)),
        ("sparse + contractive, leaky_relu", dict(single, sparse_l1=0.3, contractive=0.5,
                                                  activation="leaky_relu")),
        ("tied weights, mse, sigmoid", dict(single, tied=True, activation="sigmoid")),
        ("tied + contractive, tanh, denoising", dict(single, tied=True, contractive=0.5, activation="tanh",
                                                     noise_std=0.3)),
        ("tied + contractive + sparse, softplus, bce", dict(single, tied=True, contractive=0.5, sparse_l1=0.3,
                                                            activation="softplus", loss="bce")),
    ]
    return configs


def _kink_margin(ae, x_input):
    """The smallest distance to a kink: |a| of every relu-like unit, |h| of the L1 term."""
    margin, h = np.inf, x_input
    for i in range(ae.encoder.n_layers):
        W, b, kind = ae.encoder.layer(i)
        a = h @ W + b
        if kind in kernels.KINKED:
            margin = min(margin, float(np.min(np.abs(a))))
        h = kernels.activation(a, kind)
    if ae.sparse_l1 > 0:
        margin = min(margin, float(np.min(np.abs(h[h != 0]), initial=np.inf)))
    for i in range(ae.decoder.n_layers - 1):
        W, b, kind = ae.decoder.layer(i)
        a = h @ W + b
        if kind in kernels.KINKED:
            margin = min(margin, float(np.min(np.abs(a))))
        h = kernels.activation(a, kind)
    return margin


def gradcheck_problem(config, n=4, seed=0, margin=1e-3):
    """A float64 autoencoder and a fixed (x, x_input), x_input != x, for a gradient check.

    Biases are random and nonzero, and x_input is redrawn until every relu-like pre-activation
    and every nonzero code of an L1 penalty is at least ``margin`` from 0, so no perturbation
    of size h = 1e-5 crosses a kink. A denoising model corrupts x with its own noise; any other
    gets x_input = x + 0.25 * noise (the loss does not care where x_input came from)."""
    rng = np.random.default_rng(seed)
    ae = Autoencoder(**dict(config, dtype="float64", seed=seed))
    for name, p in ae.params.items():
        if name.split(".")[-1].startswith("b"):
            p[...] = rng.uniform(0.05, 0.5, p.shape) * rng.choice([-1, 1], p.shape)
    for _ in range(100):
        x = rng.uniform(0, 1, (n, ae.input_dim))
        x_input = ae.corrupt(x, rng) if ae.denoising else x + 0.25 * rng.standard_normal(x.shape)
        if _kink_margin(ae, x_input) >= margin and not np.array_equal(x, x_input):
            return ae, x, x_input
    raise RuntimeError(f"no gradient-check input away from the kinks for {config}")


def gradcheck_suite(seed=0):
    """[(configuration name, GradReport)] for every configuration of :func:`gradcheck_configs`."""
    from .gradcheck import check_model
    reports = []
    for name, config in gradcheck_configs():
        ae, x, x_input = gradcheck_problem(config, seed=seed)
        reports.append((name, check_model(ae, x, x_input)))
    return reports
