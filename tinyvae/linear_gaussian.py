"""The linear-Gaussian VAE, where every term of the ELBO identity is exact.

With ``hidden_dims=()`` and ``likelihood="gaussian"`` the VAE's decoder is affine,

    p(z) = N(0, I_Z),      p(x|z) = N(x; z W + b, sigma2 I_D),      W (Z, D), b (D,)

(probabilistic PCA, Tipping & Bishop 1999). Then everything is Gaussian and closed form:

    p(x)   = N(x; b, C),           C = W^T W + sigma2 I_D                                (1)
    p(z|x) = N(z; m(x), S),        S = (I_Z + W W^T / sigma2)^-1,  m = (x - b) W^T S / sigma2   (2)

((1): x = z W + b + noise is a sum of independent Gaussians, so Cov x = W^T W + sigma2 I.
(2): complete the square in z of log p(z) + log p(x|z); the precision S^-1 is the prior's, I,
plus the likelihood's, W W^T / sigma2.) And for the (affine, diagonal) encoder q(z|x) = N(mu(x), diag(s2(x))), s2 = exp(logvar):

    E_q[log p(x|z)] = -D/2 log(2 pi sigma2) - (|x - mu W - b|^2 + sum_j s2_j |W_j|^2) / (2 sigma2)
    E_q[log p(z)]   = -Z/2 log(2 pi) - 1/2 sum_j (mu_j^2 + s2_j)
    -E_q[log q]     =  Z/2 (log(2 pi) + 1) + 1/2 sum_j logvar_j                       (entropy)

where W_j is row j of W (the weights out of z_j): the first line uses
E_q|x - z W - b|^2 = |x - mu W - b|^2 + sum_j s2_j |W_j|^2 (the error at the mean of z plus
the variance of z W).
The ELBO is the sum of these three expectations, and the identity

    log p(x) = ELBO(x) + KL(q(z|x) || p(z|x))                                              (3)

holds exactly (Kingma & Welling 2013, eq. 1): the gap between log p(x) and the ELBO is
KL(q(z|x) || p(z|x)), with q in the first slot, the direction variational inference minimises.
The functions take such a VAE (and x (N, D) where they need it) and work in float64.
"""
import numpy as np

from .errors import TinyVAEError

LOG_2PI = np.log(2 * np.pi)


def _parts(vae):
    """(A, c, W, b, sigma2): encoder x -> [mu, logvar] = x A + c, decoder o = z W + b."""
    if vae.encoder.n_layers != 1 or vae.decoder.n_layers != 1 or vae.likelihood != "gaussian":
        raise TinyVAEError("closed-form results need the linear-Gaussian VAE: "
                           "VAE(..., hidden_dims=(), likelihood='gaussian')")
    p = {k: np.array(v, dtype=np.float64) for k, v in vae.params.items()}   # copies, never the live views
    return p["enc.W0"], p["enc.b0"], p["dec.W0"], p["dec.b0"], float(vae.sigma2)


def _x(vae, x):
    """x checked as the model checks its inputs ((N, D), one image may be 1-D, finite), in float64."""
    return vae._input(x).astype(np.float64)


def _q(vae, x):
    A, c, _, _, _ = _parts(vae)
    e = _x(vae, x) @ A + c                                   # (N, 2Z)
    Z = vae.latent_dim
    return e[:, :Z], e[:, Z:]                                # mu, logvar  (N, Z) each


def marginal(vae):
    """p(x) = N(b, C) of eq. (1): returns the mean b (D,) and covariance C (D, D)."""
    _, _, W, b, sigma2 = _parts(vae)
    return b, W.T @ W + sigma2 * np.eye(W.shape[1])


def log_marginal_likelihood(vae, x):
    """Exact log p(x) under eq. (1), per example: (N,)."""
    b, C = marginal(vae)
    r = _x(vae, x) - b                                        # (N, D)
    L = np.linalg.cholesky(C)                                 # C = L L^T
    y = np.linalg.solve(L, r.T)                               # (D, N): L^-1 (x - b)
    log_det = 2 * np.sum(np.log(np.diag(L)))
    return -0.5 * (C.shape[0] * LOG_2PI + log_det + np.sum(y * y, axis=0))


def posterior(vae, x):
    """The true posterior p(z|x) = N(m, S) of eq. (2): m (N, Z) and S (Z, Z)."""
    _, _, W, b, sigma2 = _parts(vae)
    S = np.linalg.inv(np.eye(W.shape[0]) + W @ W.T / sigma2)  # (Z, Z)
    m = (_x(vae, x) - b) @ W.T @ S / sigma2
    return m, S


def expected_elbo(vae, x):
    """The ELBO E_q[log p(x|z)] + E_q[log p(z)] - E_q[log q(z|x)], exactly, per example (N,)."""
    _, _, W, b, sigma2 = _parts(vae)
    x = _x(vae, x)
    mu, logvar = _q(vae, x)
    s2 = np.exp(logvar)                                        # (N, Z)
    D, Z = W.shape[1], W.shape[0]
    sq = np.sum((x - mu @ W - b) ** 2, axis=1) + s2 @ np.sum(W * W, axis=1)
    e_log_px_z = -0.5 * D * np.log(2 * np.pi * sigma2) - sq / (2 * sigma2)
    e_log_pz = -0.5 * Z * LOG_2PI - 0.5 * np.sum(mu**2 + s2, axis=1)
    entropy = 0.5 * Z * (LOG_2PI + 1) + 0.5 * np.sum(logvar, axis=1)
    return e_log_px_z + e_log_pz + entropy


def kl_to_posterior(vae, x):
    """KL(q(z|x) || p(z|x)) between the diagonal q and the full-covariance posterior, (N,).

    For q = N(mu, Sq), Sq = diag(s2), and p(z|x) = N(m, S) with precision P = S^-1:

        KL = 1/2 (tr(P Sq) + (m - mu) P (m - mu)^T - Z + log det S - log det Sq)
    """
    mu, logvar = _q(vae, x)
    m, S = posterior(vae, x)
    P = np.linalg.inv(S)                                       # posterior precision (Z, Z)
    d = m - mu                                                 # (N, Z)
    trace = np.exp(logvar) @ np.diag(P)                        # tr(P diag(s2))
    maha = np.einsum("nj,jk,nk->n", d, P, d)
    _, log_det_S = np.linalg.slogdet(S)
    Z = mu.shape[1]
    return 0.5 * (trace + maha - Z + log_det_S - np.sum(logvar, axis=1))


def fit_encoder_to_posterior(vae, x):
    """Set the affine encoder to the best diagonal q for every x at once, in closed form.

    For the linear-Gaussian model the diagonal q that minimises KL(q || p(z|x)), i.e. maximises
    the ELBO, has mean mu = m(x), affine in x, and variances s2_j = 1 / P_jj (P = S^-1),
    constant in x (Bishop 2006, PRML sec. 10.1.2; Turner & Sahani 2011). Since the optimum is
    the same affine map for every x, ``x`` itself is not used (it is kept for the signature).
    Returns the VAE (changed in place)."""
    _, _, W, b, sigma2 = _parts(vae)
    Z = vae.latent_dim
    _, S = posterior(vae, np.zeros((1, W.shape[1])))
    M = W.T @ S / sigma2                                       # (D, Z): m = (x - b) M
    enc_W, enc_b = vae.params["enc.W0"], vae.params["enc.b0"]
    enc_W[:, :Z] = M
    enc_b[:Z] = -b @ M
    enc_W[:, Z:] = 0
    enc_b[Z:] = -np.log(np.diag(np.linalg.inv(S)))
    return vae
