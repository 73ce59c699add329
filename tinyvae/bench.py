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
    of BLAS bound         (seconds of an epoch's products alone) / (seconds of the epoch): 100% =
                          no overhead; the products are timed right after each epoch and paired
                          with it, and the median over the epochs after the first is reported

for each backend (``numba``, ``numpy``), and with ``--torch`` the same for the PyTorch reference
(``../shared/bench/torch_vae_ref.py``, or ``$TINYVAE_TORCH_REF``), run in alternation with
tinyvae so that drifts of the machine hit both alike; the ratio quoted is the median over rounds.
``--profile`` adds where an epoch's time goes, part by part (:func:`profile_epoch`), beside what
each part costs alone with its data in cache (:func:`step_floor`), and the ceiling those costs
put on the fraction of the bound that a step doing the parts one after the other can reach.
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

# init="uniform": the reference's nn.Linear layers start from U(+-1/sqrt(fan_in)); with tinyvae's
# default He-normal start the test loss after 10 epochs was ~1 nat worse (245.3 against 244.2)
RECIPE = dict(input_dim=784, hidden_dims=(400,), latent_dim=20, likelihood="bernoulli",
              activation="relu", dtype="float32", init="uniform")
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
    from .data import ALIASES, load_dataset
    try:
        ds = load_dataset(data, download=False, progress=False)
        x_train, x_test, what = ds.x_train, ds.x_test, f"{ds.name}, {ds.x_train.shape[0]} train / {ds.x_test.shape[0]} test images"
        if x_train.shape[1] != RECIPE["input_dim"]:
            raise TinyVAEError(f"the bench recipe needs 28x28 images (784 values); {ds.name} has {x_train.shape[1]}")
    except TinyVAEError as e:
        if ALIASES.get(str(data).strip().lower()) != "fashion-mnist":        # also "fmnist", "Fashion-MNIST"
            raise
        log(f"note: Fashion-MNIST not found ({str(e).splitlines()[0][:120]}...);\n"
            "      timing on SYNTHETIC random images of the same shape (60000 x 784); the test losses "
            "mean nothing.\n      Install Debian's dataset-fashion-mnist, or put the IDX files in $TINYVAE_DATA/fashion-mnist.")
        rng = np.random.default_rng(0)
        x_train = (rng.random((60000, 784), np.float32) ** 3).astype(np.float32)
        x_test = (rng.random((10000, 784), np.float32) ** 3).astype(np.float32)
        what = "SYNTHETIC random images, 60000 train / 10000 test, 784 values each"
    if n_train is not None:
        x_train, x_test = x_train[:n_train], x_test[:max(1, n_train // 6)]
    return np.ascontiguousarray(x_train, np.float32), np.ascontiguousarray(x_test, np.float32), what


def time_tinyvae(x_train, x_test, epochs, backend="numba", seed=0, log=None, bound=None):
    """Train the recipe for ``epochs``; returns (seconds of each epoch, test -ELBO, model,
    bounds). With ``bound`` (a function returning seconds), it is called after every epoch and
    ``bounds`` holds its results, one per epoch; its own time is not part of any epoch's."""
    from .train import Trainer
    from .vae import VAE
    previous = kernels.get_backend()
    kernels.set_backend(backend)
    try:
        vae = VAE(**RECIPE, seed=seed)
        trainer = Trainer(vae, batch_size=BATCH, lr=LR, optimizer="adam", seed=seed)
        seconds, bounds, start = [], [], [time.perf_counter()]

        def on_epoch(t):
            seconds.append(time.perf_counter() - start[0])
            if log:
                log(f"  tinyvae/{backend} epoch {t.epoch}: train {t.history['loss'][-1]:.2f} nats  "
                    f"{seconds[-1]:.2f} s")
            if bound is not None:
                bounds.append(bound())
            start[0] = time.perf_counter()

        trainer.run(x_train, epochs, progress=False, epoch_callback=on_epoch, checked=True)
        test = vae.evaluate(x_test, np.random.default_rng([seed, 5]))["loss"]
        return seconds, test, vae, bounds
    finally:
        kernels.set_backend(previous)


# The parts of a step, as (label, file, function names, time): "own" is the time spent in the
# function itself, "all" includes what it calls. The public kernels of kernels.py count with
# everything under them (the numba loop, or the NumPy twin and its helpers). The matrix
# products are no function of their own to the profiler (np.matmul is a ufunc), so they are the
# own time of MLP.forward and MLP.backward, which do little else. The rest is "the rest".
PROFILE_PARTS = (
    ("matrix products (in MLP.forward, MLP.backward)", "layers.py", ("forward", "backward"), "own"),
    ("Adam over all parameters", "kernels.py", ("adam",), "all"),
    ("bias + activation, forward", "kernels.py", ("bias_activation",), "all"),
    ("activation backward and bias gradient", "kernels.py", ("activation_backward",), "all"),
    ("Bernoulli loss and its gradient", "kernels.py", ("bernoulli_nll_grad",), "all"),
    ("reparameterization and KL, forward and backward", "kernels.py",
     ("reparameterize", "reparameterize_backward"), "all"),
    ("gathering the minibatch", "~", ("<method 'take' of 'numpy.ndarray' objects>",), "own"),
)


def profile_epoch(x_train, backend="numba", seed=0):
    """Where an epoch's time goes: cProfile over the second epoch of the recipe (the first
    compiles and warms up). Returns (seconds of the epoch, [(part, seconds), ...]): the parts
    of PROFILE_PARTS, then the rest (Python, small NumPy calls, the profiler's own cost)."""
    import cProfile
    import pstats
    from .train import Trainer
    from .vae import VAE
    previous = kernels.set_backend(backend)
    try:
        vae = VAE(**RECIPE, seed=seed)
        trainer = Trainer(vae, batch_size=BATCH, lr=LR, optimizer="adam", seed=seed)
        profiler, stamps = cProfile.Profile(), []

        def on_epoch(t):
            stamps.append(time.perf_counter())
            if t.epoch == 1:
                profiler.enable()
            else:
                profiler.disable()
        trainer.run(x_train, 2, progress=False, epoch_callback=on_epoch, checked=True)
    finally:
        kernels.set_backend(previous)
    seconds = stamps[1] - stamps[0]
    stats = pstats.Stats(profiler).stats          # (file, line, name) -> (calls, calls, own, all, callers)
    parts = []
    for label, where, names, which in PROFILE_PARTS:
        column = 2 if which == "own" else 3
        parts.append((label, sum(row[column] for (path, _, name), row in stats.items()
                                 if name in names and path.endswith(where))))
    parts.append(("the rest: Python, small NumPy calls, the profiler", seconds - sum(t for _, t in parts)))
    return seconds, parts


def step_floor(vae, batch_size, x_train, repeats=200):
    """Each elementwise part of one training step timed alone, over and over, on arrays of the
    step's shapes: what it costs with its data in cache and no Python around it. Returns
    [(part, seconds per step), ...] with the labels of PROFILE_PARTS (without the products).

    Their sum is a floor under a step's overhead on one core, so
    (products alone) / (products alone + this sum) is a ceiling on the fraction of the BLAS
    bound that any step running these kernels one after another can reach."""
    rng = np.random.default_rng(0)
    dt, b, Z = np.dtype(vae.dtype), batch_size, vae.latent_dim
    layers = [mlp.layer(i) for mlp in (vae.encoder, vae.decoder) for i in range(mlp.n_layers)]
    acts = [(rng.standard_normal((b, W.shape[1])).astype(dt), bias, kind) for W, bias, kind in layers]
    grads = [(np.empty_like(a), np.empty_like(bias)) for a, bias, _ in acts]
    logits = acts[-1][0]
    x = x_train[:b]
    rows, dlogits, work = np.empty(b, dt), np.empty_like(logits), np.empty_like(logits)
    mu, logvar, eps = (rng.standard_normal((b, Z)).astype(dt) for _ in range(3))
    z, kl, dmu, dlogvar = np.empty_like(mu), np.empty(b, dt), np.empty_like(mu), np.empty_like(mu)
    order = rng.permutation(x_train.shape[0])[:b]
    gathered = np.empty((b, x_train.shape[1]), dt)
    theta, g = vae.flat.copy(), rng.standard_normal(vae.flat.size).astype(dt) * dt.type(1e-3)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    work_of = {
        "Adam over all parameters":
            lambda: kernels.adam(theta, g, m, v, LR, 0.9, 0.999, 1e-8, 10),
        "bias + activation, forward":
            lambda: [kernels.bias_activation(a, bias, kind, out=a) for a, bias, kind in acts],
        "activation backward and bias gradient":
            lambda: [kernels.activation_backward(a, a, kind, da=da, db=db)
                     for (a, _, kind), (da, db) in zip(acts, grads)],
        "Bernoulli loss and its gradient":
            lambda: kernels.bernoulli_nll_grad(logits, x, 1.0 / b, rows=rows, dlogits=dlogits, work=work),
        "reparameterization and KL, forward and backward":
            lambda: (kernels.reparameterize(mu, logvar, eps, z=z, kl=kl),
                     kernels.reparameterize_backward(z, mu, logvar, eps, 1.0 / b, dmu=dmu, dlogvar=dlogvar)),
        "gathering the minibatch":
            lambda: np.take(x_train, order, axis=0, out=gathered, mode="clip"),
    }
    parts = []
    for label, *_ in PROFILE_PARTS[1:]:
        work_of[label]()                                            # compile, warm the cache
        start = time.perf_counter()
        for _ in range(repeats):
            work_of[label]()
        parts.append((label, (time.perf_counter() - start) / repeats))
    return parts


def torch_reference_path(path=None):
    """Where the PyTorch reference is (it is not part of tinyvae); an error if it or torch is missing."""
    path = Path(path or os.environ.get("TINYVAE_TORCH_REF") or TORCH_REF)
    if not path.is_file():
        raise TinyVAEError(f"the PyTorch reference {path} does not exist; pass --torch-ref PATH "
                           "or set TINYVAE_TORCH_REF")
    if importlib.util.find_spec("torch") is None:
        raise TinyVAEError("--torch needs PyTorch: pip install torch==2.13.0 (a CPU build)")
    return path


# Run in a child process: PyTorch's own OpenMP threads, once started, kept slowing the
# OpenBLAS threads of tinyvae runs in the same process (epochs 1.5x slower after the first
# PyTorch run), so each PyTorch run gets a fresh interpreter and tinyvae never shares one with it.
TORCH_RUNNER = """
import importlib.util, json, sys
from tinyvae.bench import load_bench_data
path, data, epochs, threads, seed, n_train = sys.argv[1:7]
spec = importlib.util.spec_from_file_location("torch_vae_ref", path)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
x_train, x_test, _ = load_bench_data(data, None if n_train == "all" else int(n_train), log=lambda s: None)
times, test = ref.train(x_train, x_test, epochs=int(epochs), seed=int(seed), threads=int(threads),
                        log=lambda s: print("  pytorch " + s, file=sys.stderr, flush=True))
print(json.dumps({"times": list(times), "test": float(test)}))
"""


def time_torch(path, data, n_train, epochs, threads, seed=0, verbose=False):
    """Train the PyTorch reference in a child process; returns (seconds of each epoch, test loss)."""
    import json
    r = subprocess.run([sys.executable, "-c", TORCH_RUNNER, str(path), data, str(epochs), str(threads),
                        str(seed), "all" if n_train is None else str(n_train)],
                       stdout=subprocess.PIPE, stderr=None if verbose else subprocess.PIPE, text=True)
    if r.returncode != 0:
        last = (r.stderr or "").strip().splitlines()[-1:] or ["(no output)"]
        raise TinyVAEError(f"the PyTorch reference failed: {last[0]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return out["times"], out["test"]


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
              n_train=None, torch_ref=None, cold=True, verbose=False, profile=False, log=print):
    """Run the benchmark and print its table; returns a dict of the measured numbers."""
    from .commands import blas_threads
    from .vae import VAE
    if epochs < 2:
        raise TinyVAEError("--epochs must be at least 2: the first epoch is a warm-up and is not timed")
    ref = torch_reference_path(torch_ref) if torch else None
    x_train, x_test, what = load_bench_data(data, n_train, log)
    shape = VAE(**RECIPE)
    n = x_train.shape[0]
    flops = epoch_flops(shape, n, BATCH)
    steps = -(-n // BATCH)
    log(f"tinyvae bench: VAE 784-400-20-400-784, ReLU, Bernoulli, Adam lr {LR:g}, batch {BATCH}, float32")
    if n_train is not None:          # say what is timed, not what the files hold
        what = f"{what}; timing the first {x_train.shape[0]} train / {x_test.shape[0]} test images (--n-train)"
    log(f"data: {what}")
    results = {"flops_per_epoch": flops, "data": what}
    names = (*backends, *(("pytorch",) if torch else ()))
    runs, tests, bounds, fractions = ({name: [] for name in names} for _ in range(4))
    with blas_threads(threads):
        for r in range(rounds):
            if rounds > 1:
                log(f"round {r + 1}/{rounds}")
            # The bound is timed beside every run: this machine's speed drifts by a third within
            # minutes, so a fraction only means something between neighbouring timings. For
            # tinyvae it is timed after every epoch and paired with that epoch; PyTorch runs in
            # another process, so its bound is the mean of one timed before and one after.
            # Every other round runs in reverse order (A B C, C B A, ...), so that a drift of
            # the machine's speed within a round favours no one.
            for name in (names if r % 2 == 0 else names[::-1]):
                if name == "pytorch":
                    before = blas_bound(shape, n, BATCH, repeats=1)
                    seconds, test = time_torch(ref, data, n_train, epochs, threads, verbose=verbose)
                    paired = [0.5 * (before + blas_bound(shape, n, BATCH, repeats=1))] * len(seconds)
                    label = "pytorch"
                else:
                    seconds, test, _, paired = time_tinyvae(
                        x_train, x_test, epochs, name, log=log if verbose else None,
                        bound=lambda: blas_bound(shape, n, BATCH, repeats=1))
                    label = f"tinyvae/{name}"
                runs[name].append(_median_after_warmup(seconds))
                fractions[name].append(_median_after_warmup([b / s for b, s in zip(paired, seconds)]))
                tests[name].append(test)
                bounds[name].append(_median_after_warmup(paired))
                log(f"  {label}: {runs[name][-1]:.3f} s/epoch, {fractions[name][-1]:.0%} of the BLAS bound "
                    f"timed beside it ({bounds[name][-1]:.3f} s), test -ELBO {test:.2f} after {epochs} epochs")
    every = [b for name in names for b in bounds[name]]
    log(f"{len(step_products(shape.encoder.sizes, shape.decoder.sizes, BATCH))} matrix products per step, "
        f"{steps} steps per epoch: {flops / 1e9:.1f} GFLOP per epoch; the products alone take "
        f"{statistics.median(every):.3f} s per epoch (median) = {flops / statistics.median(every) / 1e9:.0f} GFLOP/s "
        f"with {threads} BLAS thread(s): the BLAS bound")
    results["blas_bound_s"] = statistics.median(every)
    log("")
    log(f"medians of {rounds} round(s)     s/epoch  GFLOP/s  of BLAS bound  test -ELBO")
    for name in names:
        s = statistics.median(runs[name])
        frac = statistics.median(fractions[name])
        label = name if name == "pytorch" else f"tinyvae/{name}"
        log(f"{label:28}{s:9.3f}{flops / s / 1e9:9.0f}{frac:14.0%} {statistics.median(tests[name]):11.2f}")
        if frac > 1:
            log(f"{'':28}(above 100%: the products alone were timed while the machine was slower than "
                "during the epochs, e.g. busy with other work; the fraction means nothing, run again "
                "on a quiet machine)")
        results[name] = dict(seconds_per_epoch=s, gflops=flops / s / 1e9, of_bound=frac,
                             test_loss=statistics.median(tests[name]), rounds=runs[name], bounds=bounds[name],
                             fractions=fractions[name])
    if ref is not None:
        for backend in backends:
            ratios = [a / b for a, b in zip(runs[backend], runs["pytorch"])]
            results[backend]["vs_pytorch"] = statistics.median(ratios)
            log(f"tinyvae/{backend} / pytorch epoch time: {statistics.median(ratios):.2f} "
                f"(median of {rounds} alternating round(s): {', '.join(f'{q:.2f}' for q in ratios)})")
    if profile:
        for backend in backends:
            with blas_threads(threads):
                seconds, parts = profile_epoch(x_train, backend)
            log(f"\nwhere an epoch goes, tinyvae/{backend} (cProfile over epoch 2: {seconds:.3f} s, "
                f"{seconds / steps * 1e3:.2f} ms per step)")
            previous = kernels.set_backend(backend)
            try:
                with blas_threads(threads):
                    floor = dict(step_floor(shape, BATCH, x_train))
                    per_step_bound = blas_bound(shape, BATCH * 50, BATCH, repeats=3) / 50
            finally:
                kernels.set_backend(previous)
            log(f"  {'':52}{'in the epoch':>30}   alone, in cache")
            for label, t in parts:
                alone = f"{floor[label] * 1e3:7.3f} ms/step" if label in floor else ""
                log(f"  {label:52}{t:7.3f} s {t / steps * 1e3:7.3f} ms/step {t / seconds:5.0%}   {alone}")
            overhead = sum(floor.values())
            ceiling = per_step_bound / (per_step_bound + overhead)
            log(f"  the elementwise parts alone, in cache: {overhead * 1e3:.3f} ms per step; the products alone: "
                f"{per_step_bound * 1e3:.3f} ms;\n  so a step running them one after the other reaches at most "
                f"{ceiling:.0%} of the BLAS bound")
            results[backend]["profile"] = dict(parts)
            results[backend]["floor"] = floor
            results[backend]["ceiling"] = ceiling
    if cold:
        results["cold_start_s"] = cold_start()
        log(f"cold start (import tinyvae + first training step, numba cache warm): {results['cold_start_s']:.2f} s")
    return results


def _bench_backends(text):
    """'numba,numpy' -> ('numba', 'numpy'): known names, each once, at least one."""
    backends = []
    for b in (part.strip() for part in str(text).split(",")):
        if not b:
            continue
        if b not in kernels.BACKENDS:
            raise TinyVAEError(f"unknown backend {b!r} in --backends; expected numba and/or numpy, "
                               "such as --backends numba,numpy")
        if b not in backends:                  # numba,numba times numba once
            backends.append(b)
    if not backends:
        raise TinyVAEError(f"--backends names no backend (got {text!r}); give numba, numpy or numba,numpy")
    return tuple(backends)


def _check_named_data(data):
    """bench never downloads: a named dataset other than Fashion-MNIST (which falls back to
    synthetic images) must be on this machine already."""
    from .data import ALIASES, find_idx_files, search_dirs
    name = ALIASES.get(str(data).strip().lower())
    if name in (None, "digits", "fashion-mnist"):
        return
    dirs = search_dirs(name)
    if any(os.path.isdir(d) and not find_idx_files(d)[1] for _, d in dirs):
        return
    raise TinyVAEError(f"--data {data}: {name} is not on this machine (looked in "
                       f"{'; '.join(d for _, d in dirs)}) and bench never downloads; get the files with "
                       f"'tinyvae train --data {name} --epochs 1', which downloads them, or put the four IDX "
                       f"files in $TINYVAE_DATA/{name}")


def _cmd_bench(args):
    from .commands import positive_int, thread_count, usable_cores
    epochs = positive_int("--epochs", args.epochs)
    if epochs < 2:
        raise TinyVAEError(f"--epochs must be at least 2, got {args.epochs!r}: the first epoch is a warm-up "
                           "and is not timed")
    backends = _bench_backends(args.backends)
    rounds = positive_int("--rounds", args.rounds)
    # default 2 (1 on a one-core machine); never more threads than cores
    threads = min(2, usable_cores()) if args.threads is None else thread_count("--threads", args.threads)
    n_train = None
    if args.n_train is not None:
        n_train = positive_int("--n-train", args.n_train)
        if n_train < BATCH:
            raise TinyVAEError(f"--n-train must be at least one minibatch ({BATCH}), got {args.n_train!r}")
    _check_named_data(args.data)
    if args.torch_ref is not None and not args.torch:
        raise TinyVAEError("--torch-ref names the PyTorch reference that --torch runs; add --torch or drop it")
    run_bench(epochs=epochs, backends=backends, torch=args.torch, rounds=rounds,
              threads=threads, data=args.data, n_train=n_train, torch_ref=args.torch_ref,
              cold=not args.no_cold_start, verbose=args.verbose, profile=args.profile)
    return 0


def register(sub):
    p = sub.add_parser(
        "bench", help="time the classic VAE's training against the BLAS bound (and PyTorch)",
        description="Train the classic VAE (784-400-20-400-784, ReLU, Bernoulli, Adam 1e-3, batch 128, "
                    "float32) on Fashion-MNIST and print seconds per epoch, GFLOP/s and the fraction of the "
                    "BLAS bound (the step's matrix products alone) for each kernel backend. Fashion-MNIST is "
                    "never downloaded: without its files the timing runs on synthetic images of the same "
                    "shape, and the output says so.")
    p.add_argument("--epochs", default="3", help="epochs per run, at least 2; the first is a warm-up (default 3)")
    p.add_argument("--backends", default="numba,numpy", help="kernel backends to time, comma-separated "
                                                             "(default numba,numpy)")
    p.add_argument("--torch", action="store_true", help="also time the PyTorch reference, alternating with tinyvae")
    p.add_argument("--torch-ref", default=None, help="path of the reference (default $TINYVAE_TORCH_REF if set, "
                                                     f"else {TORCH_REF}, beside the source checkout)")
    p.add_argument("--rounds", default="1", help="alternating rounds; medians are quoted (default 1)")
    p.add_argument("--threads", default=None, help="BLAS (and PyTorch) threads, at most the core count "
                                                   "(default 2, or 1 on a one-core machine)")
    p.add_argument("--data", default="fashion-mnist", help="fashion-mnist (default), mnist (already on this "
                                                          "machine: bench never downloads), or a path")
    p.add_argument("--n-train", default=None, help=argparse.SUPPRESS)   # small runs, for tests
    p.add_argument("--no-cold-start", action="store_true", help="skip the cold-start measurement")
    p.add_argument("--verbose", action="store_true", help="print every epoch")
    p.add_argument("--profile", action="store_true",
                   help="also show where an epoch's time goes (matrix products, Adam, each kernel), per backend")
    p.set_defaults(func=_cmd_bench)
