"""``tinyvae bench``: how fast the classic VAE trains, against the BLAS bound and PyTorch.

The recipe is Kingma & Welling's MNIST model as PyTorch's examples train it: 784-400-20-400-784,
ReLU, a Bernoulli decoder on logits, Adam with lr 1e-3, minibatches of 128, float32, here on
Fashion-MNIST (60 000 training images; random images of the same shape when the files are
absent, and the output says so).

What a training step costs. With b rows per batch and an MLP layer d_in -> d_out, the forward
product is (b, d_in) @ (d_in, d_out); backward needs dW = h^T dA, (d_in, b) @ (b, d_out), and,
except for the first layer of the encoder, dh = dA W^T, (b, d_out) @ (d_out, d_in). That makes
eleven products per step for this model (4 forward, 7 backward), each 2 m k n flops. Everything
else -- bias + ReLU, the Bernoulli loss and its gradient, the reparameterization and the KL, the
Adam update over all 0.65 million parameters, gathering the batch -- is elementwise work that
the numba kernels fuse into single passes. So the best a step can do is the time of its matrix
products alone: the *BLAS bound*, measured here by timing exactly those products (same shapes,
same transposes, same ``out=`` buffers) without anything else. The bench reports

    seconds per epoch     median over the epochs after the first (the first compiles, warms caches)
    GFLOP/s               matrix-product flops of an epoch / seconds per epoch
    of BLAS bound         (seconds of the products alone) / (seconds per epoch): 100% = no overhead

for each backend (``numba``, ``numpy``), and with ``--torch`` the same for the PyTorch reference
(``../shared/bench/torch_vae_ref.py``, or ``$TINYVAE_TORCH_REF``), run in alternation with
tinyvae so that drifts of the machine hit both alike; the ratio quoted is the median over rounds.
"""
import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import kernels
from .errors import TinyVAEError

RECIPE = dict(input_dim=784, hidden_dims=(400,), latent_dim=20, likelihood="bernoulli",
              activation="relu", dtype="float32")
BATCH, LR = 128, 1e-3
TORCH_REF = Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "torch_vae_ref.py"


# --------------------------------------------------------------------------------------------
# the matrix products of one step, and the BLAS bound

def step_products(sizes_enc, sizes_dec, b):
    """The matrix products of one training step, as (m, k, n, kind): an (m, k) @ (k, n) product.

    kind is "forward" (h W), "dW" (h^T dA) or "dx" (dA W^T); the encoder's first layer has no
    dx (nothing upstream needs the gradient of the data)."""
    products = []
    for sizes, first_needs_dx in ((sizes_enc, False), (sizes_dec, True)):
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            products.append((b, d_in, d_out, "forward"))
            products.append((d_in, b, d_out, "dW"))
            if i > 0 or first_needs_dx:
                products.append((b, d_out, d_in, "dx"))
    return products


def epoch_flops(vae, n, batch_size):
    """Matrix-product flops (2 m k n each) of one epoch of ``n`` examples."""
    enc, dec = vae.encoder.sizes, vae.decoder.sizes
    full, last = divmod(n, batch_size)
    per_step = lambda b: sum(2 * m * k * q for m, k, q, _ in step_products(enc, dec, b))  # noqa: E731
    return full * per_step(batch_size) + (per_step(last) if last else 0)


def _product_operands(m, k, n, kind, rng):
    """Arrays laid out as the training step lays them out (transposed views included)."""
    f32 = np.float32
    if kind == "forward":                       # h (m, k) @ W (k, n)
        return rng.random((m, k), f32), rng.random((k, n), f32), np.empty((m, n), f32)
    if kind == "dW":                            # h^T: h is (k, m), dA (k, n)
        return rng.random((k, m), f32).T, rng.random((k, n), f32), np.empty((m, n), f32)
    return rng.random((m, k), f32), rng.random((n, k), f32).T, np.empty((m, n), f32)   # dA W^T


def blas_bound(vae, n, batch_size, repeats=3):
    """Seconds per epoch of the step's matrix products alone (median of ``repeats``)."""
    rng = np.random.default_rng(0)
    enc, dec = vae.encoder.sizes, vae.decoder.sizes
    full, last = divmod(n, batch_size)
    plans = [(full, [_product_operands(*p, rng) for p in step_products(enc, dec, batch_size)])]
    if last:
        plans.append((1, [_product_operands(*p, rng) for p in step_products(enc, dec, last)]))
    for _, ops in plans:                        # warm up
        for a, w, out in ops:
            np.matmul(a, w, out=out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for count, ops in plans:
            for _ in range(count):
                for a, w, out in ops:
                    np.matmul(a, w, out=out)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------------------------
# timing tinyvae and the reference

def load_bench_data(data="fashion-mnist", n_train=None, log=print):
    """(x_train, x_test, description): the real images, or random ones of the same shape."""
    from .data import load_dataset
    try:
        ds = load_dataset(data, download=False, progress=False)
        x_train, x_test, what = ds.x_train, ds.x_test, f"{ds.name}, {ds.x_train.shape[0]} train / {ds.x_test.shape[0]} test images"
        if x_train.shape[1] != RECIPE["input_dim"]:
            raise TinyVAEError(f"the bench recipe needs 28x28 images (784 values); {ds.name} has {x_train.shape[1]}")
    except TinyVAEError as e:
        if data != "fashion-mnist":
            raise
        log(f"note: Fashion-MNIST not found ({str(e).splitlines()[0][:120]}...);\n"
            "      timing on SYNTHETIC random images of the same shape (60000 x 784); the test losses "
            "mean nothing.\n      Install Debian's dataset-fashion-mnist, or put the IDX files in $TINYVAE_DATA.")
        rng = np.random.default_rng(0)
        x_train = (rng.random((60000, 784), np.float32) ** 3).astype(np.float32)
        x_test = (rng.random((10000, 784), np.float32) ** 3).astype(np.float32)
        what = "SYNTHETIC random images, 60000 train / 10000 test, 784 values each"
    if n_train is not None:
        x_train, x_test = x_train[:n_train], x_test[:max(1, n_train // 6)]
    return np.ascontiguousarray(x_train, np.float32), np.ascontiguousarray(x_test, np.float32), what


def time_tinyvae(x_train, x_test, epochs, backend="numba", seed=0, log=None):
    """Train the recipe for ``epochs``; returns (seconds of each epoch, test -ELBO, model)."""
    from .train import Trainer
    from .vae import VAE
    previous = kernels.get_backend()
    kernels.set_backend(backend)
    try:
        vae = VAE(**RECIPE, seed=seed)
        trainer = Trainer(vae, batch_size=BATCH, lr=LR, optimizer="adam", seed=seed)
        stamps = []
        start = time.perf_counter()

        def on_epoch(t):
            stamps.append(time.perf_counter())
            if log:
                log(f"  tinyvae/{backend} epoch {t.epoch}: train {t.history['loss'][-1]:.2f} nats  "
                    f"{stamps[-1] - (stamps[-2] if len(stamps) > 1 else start):.2f} s")

        trainer.run(x_train, epochs, progress=False, epoch_callback=on_epoch, checked=True)
        seconds = list(np.diff([start] + stamps))
        test = vae.evaluate(x_test, np.random.default_rng([seed, 5]))["loss"]
        return seconds, test, vae
    finally:
        kernels.set_backend(previous)


def load_torch_reference(path=None):
    """The PyTorch reference module, imported from its file (it is not part of tinyvae)."""
    path = Path(path or os.environ.get("TINYVAE_TORCH_REF") or TORCH_REF)
    if not path.is_file():
        raise TinyVAEError(f"the PyTorch reference {path} does not exist; pass --torch-ref PATH "
                           "or set TINYVAE_TORCH_REF")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise TinyVAEError("--torch needs PyTorch: pip install torch==2.13.0 (a CPU build)") from None
    spec = importlib.util.spec_from_file_location("torch_vae_ref", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_torch(ref, x_train, x_test, epochs, threads, seed=0, log=None):
    times, test = ref.train(x_train.copy(), x_test.copy(), epochs=epochs, seed=seed, threads=threads,
                            log=(lambda s: log("  pytorch " + s)) if log else (lambda s: None))
    return list(times), float(test)


def _median_after_warmup(seconds):
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


COLD_START = """
import time
t0 = time.perf_counter()
import numpy as np
import tinyvae as tv
from tinyvae.train import Trainer
vae = tv.VAE(784, hidden_dims=(400,), latent_dim=20, dtype="float32")
trainer = Trainer(vae, batch_size=128)
x = np.random.default_rng(0).random((128, 784), dtype=np.float32)
trainer.run(x, 1, progress=False, checked=True)
print(time.perf_counter() - t0)
"""


def cold_start(runs=2):
    """Seconds from ``import tinyvae`` to the end of the first training step, in a fresh
    interpreter; the first run fills numba's cache, the last is reported."""
    seconds = None
    for _ in range(runs):
        r = subprocess.run([sys.executable, "-c", COLD_START], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise TinyVAEError(f"the cold-start run failed: {r.stderr.strip().splitlines()[-1:]}")
        seconds = float(r.stdout.strip().splitlines()[-1])
    return seconds


# --------------------------------------------------------------------------------------------
# the command

def run_bench(epochs=3, backends=("numba", "numpy"), torch=False, rounds=1, threads=2, data="fashion-mnist",
              n_train=None, torch_ref=None, cold=True, verbose=False, log=print):
    """Run the benchmark and print its table; returns a dict of the measured numbers."""
    from .commands import blas_threads
    from .vae import VAE
    if epochs < 2:
        raise TinyVAEError("--epochs must be at least 2: the first epoch is a warm-up and is not timed")
    ref = load_torch_reference(torch_ref) if torch else None
    x_train, x_test, what = load_bench_data(data, n_train, log)
    shape = VAE(**RECIPE)
    n = x_train.shape[0]
    flops = epoch_flops(shape, n, BATCH)
    steps = -(-n // BATCH)
    log(f"tinyvae bench: VAE 784-400-20-400-784, ReLU, Bernoulli, Adam lr {LR:g}, batch {BATCH}, float32")
    log(f"data: {what}")
    results = {"flops_per_epoch": flops, "data": what}
    with blas_threads(threads):
        bound = blas_bound(shape, n, BATCH)
        log(f"{len(step_products(shape.encoder.sizes, shape.decoder.sizes, BATCH))} matrix products per step, "
            f"{steps} steps per epoch: {flops / 1e9:.1f} GFLOP per epoch; the products alone take "
            f"{bound:.3f} s per epoch = {flops / bound / 1e9:.0f} GFLOP/s (BLAS bound, {threads} threads)")
        results["blas_bound_s"] = bound
        runs = {name: [] for name in (*backends, *(("pytorch",) if torch else ()))}
        tests = {name: [] for name in runs}
        for r in range(rounds):
            if rounds > 1:
                log(f"round {r + 1}/{rounds}")
            for backend in backends:
                seconds, test, _ = time_tinyvae(x_train, x_test, epochs, backend, log=log if verbose else None)
                runs[backend].append(_median_after_warmup(seconds))
                tests[backend].append(test)
                log(f"  tinyvae/{backend}: {runs[backend][-1]:.3f} s/epoch, test -ELBO {test:.2f} after {epochs} epochs")
            if ref is not None:
                seconds, test = time_torch(ref, x_train, x_test, epochs, threads, log=log if verbose else None)
                runs["pytorch"].append(_median_after_warmup(seconds))
                tests["pytorch"].append(test)
                log(f"  pytorch: {runs['pytorch'][-1]:.3f} s/epoch, test -ELBO {test:.2f} after {epochs} epochs")
    log("")
    log(f"{'':14}{'s/epoch':>9}{'GFLOP/s':>9}{'of BLAS bound':>15}{'test -ELBO':>12}")
    for name, secs in runs.items():
        s = statistics.median(secs)
        label = name if name == "pytorch" else f"tinyvae/{name}"
        log(f"{label:14}{s:9.3f}{flops / s / 1e9:9.0f}{bound / s:14.0%} {statistics.median(tests[name]):11.2f}")
        results[name] = dict(seconds_per_epoch=s, gflops=flops / s / 1e9, of_bound=bound / s,
                             test_loss=statistics.median(tests[name]), rounds=secs)
    if ref is not None:
        for backend in backends:
            ratios = [a / b for a, b in zip(runs[backend], runs["pytorch"])]
            results[backend]["vs_pytorch"] = statistics.median(ratios)
            log(f"tinyvae/{backend} / pytorch epoch time: {statistics.median(ratios):.2f} "
                f"(median of {rounds} alternating round(s): {', '.join(f'{q:.2f}' for q in ratios)})")
    if cold:
        results["cold_start_s"] = cold_start()
        log(f"cold start (import tinyvae + first training step, numba cache warm): {results['cold_start_s']:.2f} s")
    return results


def _cmd_bench(args):
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    for b in backends:
        if b not in kernels.BACKENDS:
            raise TinyVAEError(f"unknown backend {b!r} in --backends; expected numba and/or numpy")
    if args.rounds < 1 or args.threads < 1 or (args.n_train is not None and args.n_train < BATCH):
        raise TinyVAEError(f"--rounds and --threads must be positive, --n-train at least {BATCH}")
    run_bench(epochs=args.epochs, backends=backends, torch=args.torch, rounds=args.rounds,
              threads=args.threads, data=args.data, n_train=args.n_train, torch_ref=args.torch_ref,
              cold=not args.no_cold_start, verbose=args.verbose)
    return 0


def register(sub):
    p = sub.add_parser("bench", help="time the classic VAE's training against the BLAS bound (and PyTorch)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is a warm-up (default 3)")
    p.add_argument("--backends", default="numba,numpy", help="kernel backends to time (default numba,numpy)")
    p.add_argument("--torch", action="store_true", help="also time the PyTorch reference, alternating with tinyvae")
    p.add_argument("--torch-ref", default=None, help=f"path of the reference (default {TORCH_REF})")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds; medians are quoted (default 1)")
    p.add_argument("--threads", type=int, default=2, help="BLAS (and PyTorch) threads (default 2)")
    p.add_argument("--data", default="fashion-mnist", help="fashion-mnist (default), mnist, or a path")
    p.add_argument("--n-train", type=int, default=None, help=argparse.SUPPRESS)   # small runs, for tests
    p.add_argument("--no-cold-start", action="store_true", help="skip the cold-start measurement")
    p.add_argument("--verbose", action="store_true", help="print every epoch")
    p.set_defaults(func=_cmd_bench)
