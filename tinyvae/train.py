"""The training loop: shuffled minibatches, a hand-written optimizer, a history of losses.

Randomness is explicit: one generator for the data order and one for the noise (the VAE's
eps, the denoising corruption), both derived from ``seed``; no global seeding.
"""
import numpy as np

from .model import check_positive_int
from .optim import make_optimizer


def fit(model, x_train, epochs=10, batch_size=128, lr=1e-3, optimizer="adam", seed=0,
        x_val=None, progress=True):
    """Train ``model`` on ``x_train`` (N, D) by minibatch gradient descent; returns the history.

    The history is a dict of per-epoch lists: ``loss`` (mean training loss), ``val_loss``
    (when ``x_val`` is given) and the model's loss terms (for the VAE ``rec`` and ``kl``)."""
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    x = model._input(x_train, "x_train")
    xv = None if x_val is None else model._input(x_val, "x_val")
    opt = getattr(model, "optimizer", None)
    if opt is None or opt.name != optimizer or opt.lr != lr:
        opt = model.optimizer = make_optimizer(optimizer, lr)
    order_rng = np.random.default_rng([seed, 1])
    noise_rng = np.random.default_rng([seed, 2])
    history = {"epoch": [], "loss": []}
    n = x.shape[0]
    for epoch in range(epochs):
        perm = order_rng.permutation(n)
        sums, total = {}, 0.0
        for start in range(0, n, batch_size):
            xb = x[perm[start:start + batch_size]]
            loss, _, terms = model.training_loss_and_grads(xb, noise_rng)
            opt.step(model)
            total += loss * xb.shape[0]
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v * xb.shape[0]
        history["epoch"].append(epoch + 1)
        history["loss"].append(total / n)
        for k, v in sums.items():
            history.setdefault(k, []).append(v / n)
        if xv is not None:
            history.setdefault("val_loss", []).append(model.evaluate(xv, noise_rng)["loss"])
    return history
