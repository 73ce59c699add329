"""`tinyvae bench`: the flop count, the BLAS-bound timer and the command on a small run."""
import re

import numpy as np
import pytest

import tinyvae as tv
from tinyvae import bench
from tinyvae.cli import main


def recipe_vae():
    return tv.VAE(**bench.RECIPE)


def test_eleven_products_per_step_and_their_flops():
    vae = recipe_vae()
    products = bench.step_products(vae.encoder.sizes, vae.decoder.sizes, 128)
    assert len(products) == 11                      # 4 forward, 4 dW, 3 dx (none into the data)
    assert sorted(kind for *_, kind in products).count("dx") == 3
    b, D, H, Z = 128, 784, 400, 20
    forward = 2 * b * (D * H + H * 2 * Z + Z * H + H * D)
    # backward: every layer's dW costs what its forward costs, and so does every dx but the first
    assert bench.epoch_flops(vae, 128, 128) == 3 * forward - 2 * b * D * H
    # 60000 = 468 full batches and one of 96
    per = lambda n: bench.epoch_flops(vae, n, n)   # noqa: E731
    assert bench.epoch_flops(vae, 60000, 128) == 468 * per(128) + per(96)


@pytest.mark.parametrize("kind", ["forward", "dW", "dx"])
def test_timed_products_have_the_shapes_and_layouts_of_the_step(kind):
    a, w, out = bench._product_operands(5, 7, 3, kind, np.random.default_rng(0))
    assert a.shape == (5, 7) and w.shape == (7, 3) and out.shape == (5, 3)
    assert a.flags.c_contiguous == (kind != "dW") and w.flags.c_contiguous == (kind != "dx")


def test_blas_bound_is_a_positive_time():
    vae = tv.VAE(784, hidden_dims=(16,), latent_dim=2)
    seconds = bench.blas_bound(vae, 300, 128, repeats=1)
    assert np.isfinite(seconds) and seconds > 0


def test_rounds_alternate_their_order(monkeypatch):
    # A B, B A, A B: a drift of the machine within a round must not always favour the same one
    calls = []

    def fake_time_tinyvae(x_train, x_test, epochs, backend="numba", **kw):
        calls.append(backend)
        return [1.0] * epochs, 100.0, None, [0.5] * epochs
    monkeypatch.setattr(bench, "time_tinyvae", fake_time_tinyvae)
    monkeypatch.setattr(bench, "blas_bound", lambda *a, **k: 0.5)
    bench.run_bench(epochs=2, backends=("numba", "numpy"), rounds=3, n_train=256, cold=False, log=lambda s: None)
    assert calls == ["numba", "numpy", "numpy", "numba", "numba", "numpy"]


def test_a_fraction_above_the_bound_is_called_meaningless(monkeypatch):
    # the bound timed on a busier machine than the epochs: 100 s of products against ~0.1 s epochs
    monkeypatch.setattr(bench, "time_tinyvae", lambda *a, **k: ([0.1, 0.1], 250.0, None, [100.0, 100.0]))
    lines = []
    bench.run_bench(epochs=2, backends=("numba",), rounds=1, n_train=256, cold=False, log=lines.append)
    note = [line for line in lines if "above 100%" in line]
    assert len(note) == 1 and "means nothing" in note[0]


def test_bench_command_small_run(capsys):
    assert main(["bench", "--epochs", "2", "--n-train", "256", "--no-cold-start", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "tinyvae/numba" in out and "tinyvae/numpy" in out and "of BLAS bound" in out


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_profile_epoch_splits_the_epoch_into_its_parts(backend):
    x = np.random.default_rng(0).random((384, 784), np.float32)      # 3 steps per epoch
    seconds, parts = bench.profile_epoch(x, backend)
    labels = [label for label, _ in parts]
    assert labels[:-1] == [label for label, *_ in bench.PROFILE_PARTS] and labels[-1].startswith("the rest")
    named = dict(parts)
    # every part was found in the profile (a renamed function would show up here as 0), and
    # no time is counted twice (the rest would go negative)
    assert all(t > 0 for label, t in parts[:-1]), parts
    assert named[labels[-1]] >= 0
    assert sum(t for _, t in parts) == pytest.approx(seconds)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_step_floor_times_each_elementwise_part_alone(backend):
    from tinyvae import kernels
    vae = tv.VAE(784, hidden_dims=(16,), latent_dim=2, dtype="float32")
    x = np.random.default_rng(0).random((300, 784), np.float32)
    previous = kernels.set_backend(backend)
    try:
        parts = bench.step_floor(vae, 128, x, repeats=3)
    finally:
        kernels.set_backend(previous)
    # the parts of the profile, less the matrix products (which the BLAS bound times)
    assert [label for label, _ in parts] == [label for label, *_ in bench.PROFILE_PARTS[1:]]
    assert all(np.isfinite(t) and t > 0 for _, t in parts), parts


def test_bench_command_profile(capsys):
    assert main(["bench", "--epochs", "2", "--n-train", "256", "--no-cold-start", "--threads", "1",
                 "--backends", "numba", "--profile"]) == 0
    out = capsys.readouterr().out
    assert "where an epoch goes, tinyvae/numba" in out and "Adam over all parameters" in out
    assert "alone, in cache" in out
    ceiling = re.search(r"reaches at most (\d+)% of the BLAS bound", out)
    assert ceiling and 0 < int(ceiling.group(1)) <= 100, out     # a ratio of two measured times


def test_the_paired_bound_is_timed_after_every_epoch_and_outside_it(monkeypatch):
    x_train, x_test, _ = bench.load_bench_data("fashion-mnist", n_train=256, log=lambda s: None)
    calls, skipped = [], [0.0]
    clock = bench.time.perf_counter
    # a clock that jumps 1000 s whenever the bound is timed: no epoch may contain a jump
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock() + skipped[0])

    def slow_bound():
        calls.append(len(calls))
        skipped[0] += 1000.0
        return 1.5
    seconds, test, vae, bounds = bench.time_tinyvae(x_train, x_test, 3, bound=slow_bound)
    assert bounds == [1.5, 1.5, 1.5] and len(seconds) == 3 and len(calls) == 3
    assert all(0 < s < 1000 for s in seconds), seconds
    assert np.isfinite(test)


@pytest.mark.parametrize("name", ["fashion-mnist", "Fashion-MNIST", "fmnist"])
def test_bench_says_when_the_data_are_synthetic(monkeypatch, capsys, name):
    """Any spelling of Fashion-MNIST falls back to synthetic images (only the exact name had);
    another dataset that is missing stays an error."""
    import tinyvae.data

    def absent(*args, **kwargs):
        raise tv.TinyVAEError("fashion-mnist: no IDX files found")

    monkeypatch.setattr(tinyvae.data, "load_dataset", absent)
    x_train, x_test, what = bench.load_bench_data(name, n_train=256, log=print)
    assert x_train.shape == (256, 784) and x_train.dtype == np.float32
    assert "SYNTHETIC" in what and "SYNTHETIC" in capsys.readouterr().out
    with pytest.raises(tv.TinyVAEError, match="no IDX files"):
        bench.load_bench_data("mnist", n_train=256, log=print)


@pytest.mark.parametrize("argv, says", [
    (["--epochs", "1"], "warm-up"),
    (["--backends", "cuda"], "unknown backend"),
    (["--data", "digits"], "784"),
    (["--torch", "--torch-ref", "/nonexistent/ref.py"], "does not exist"),
    (["--torch-ref", "ref.py"], "add --torch or drop it"),
])
def test_bench_bad_options(argv, says, capsys):
    assert main(["bench", "--n-train", "256", "--no-cold-start", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and len(err.strip().splitlines()) == 1


def test_a_tilde_in_the_reference_path_is_the_home_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--n-train", "256", "--no-cold-start", "--torch", "--torch-ref", "~/ref.py"]) == 2
    assert f"{tmp_path / 'home' / 'ref.py'} does not exist" in capsys.readouterr().err


def test_the_reference_path_comes_from_the_option_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVAE_TORCH_REF", str(tmp_path / "from_env.py"))
    with pytest.raises(tv.TinyVAEError, match="from_env.py does not exist"):
        bench.torch_reference_path()
    with pytest.raises(tv.TinyVAEError, match="from_option.py does not exist"):
        bench.torch_reference_path(tmp_path / "from_option.py")


def test_the_reference_runs_in_a_child_process_and_reports_back(tmp_path):
    """The plumbing of --torch, with a stand-in for the PyTorch reference (CI has no torch)."""
    fake = tmp_path / "fake_ref.py"
    fake.write_text("import os\n"
                    "def train(xtr, xte, epochs=3, seed=0, threads=2, log=print):\n"
                    "    log(f'pid {os.getpid()}')\n"
                    "    return [0.5 + i for i in range(epochs)], float(xtr.shape[0] + 1000 * xte.shape[1])\n")
    seconds, test = bench.time_torch(fake, "fashion-mnist", 256, epochs=3, threads=1)
    assert seconds == [0.5, 1.5, 2.5] and test == 256 + 1000 * 784
    fake.write_text("def train(*a, **k):\n    raise RuntimeError('no luck')\n")
    with pytest.raises(tv.TinyVAEError, match="no luck"):
        bench.time_torch(fake, "fashion-mnist", 256, epochs=2, threads=1)


def bench_error(argv, capsys):
    assert main(["bench", "--n-train", "256", "--no-cold-start", "--epochs", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("backends", ["", ",", " , "])
def test_no_backend_named_is_a_clear_error(backends, capsys):
    assert "--backends names no backend" in bench_error(["--backends", backends], capsys)


@pytest.mark.parametrize("option, value", [("--rounds", "0"), ("--threads", "0"), ("--n-train", "100"),
                                           ("--rounds", "x"), ("--threads", "-2"), ("--n-train", "1.5")])
def test_each_count_option_has_its_own_message(option, value, capsys):
    argv = ["--rounds", "1", "--threads", "1", "--n-train", "256"]
    argv[argv.index(option) + 1] = value
    err = bench_error(argv, capsys)
    others = {"--rounds", "--threads", "--n-train"} - {option}
    assert option in err and repr(value) in err and not any(o in err for o in others), err


def test_mnist_that_is_not_here_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TINYVAE_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    err = bench_error(["--data", "mnist"], capsys)
    assert "allow the download" not in err
    assert "tinyvae train --data mnist" in err and "TINYVAE_DATA" in err


def test_a_repeated_backend_is_timed_once_and_the_data_line_gives_the_counts_used(capsys):
    assert main(["bench", "--epochs", "2", "--n-train", "256", "--no-cold-start", "--threads", "1",
                 "--backends", "numba,numba"]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("tinyvae/")]
    assert len(table) == 1 and table[0].startswith("tinyvae/numba"), out
    data = [line for line in out.splitlines() if line.startswith("data:")]
    assert len(data) == 1
    used = re.search(r"timing the first (\d+) train / (\d+) test images", data[0])
    assert used and int(used.group(1)) == 256 and 0 < int(used.group(2)) <= 256, data[0]


def test_bench_help_describes_the_command():
    from tinyvae.cli import build_parser
    assert "BLAS bound" in build_parser().subcommands["bench"].description
