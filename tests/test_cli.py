"""The command line: the main job, eval, sample, Ctrl-C and --resume, and bad input of every kind.

Bad input must give exit status 2, exactly one line ``error: ...`` on stderr, no traceback, and
leave every existing file as it was. Most of those tests call ``tinyvae.cli.main`` in-process
(the same code path as the console script, and fast); a few run the real command.
"""
import gzip
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys

import numpy as np
import pytest

import tinyvae as tv
from tinyvae import commands
from tinyvae.cli import main

SMALL = ["--hidden", "32", "--no-progress"]
# signals sent to processes, preexec_fn, SIGHUP, flock, symbolic links: POSIX only
POSIX_ONLY = pytest.mark.skipif(os.name == "nt", reason="POSIX signals, locks or symbolic links")


def tinyvae_cmd(*args, cwd=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "tinyvae", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def snapshot(root):
    """Every file under root with its bytes: to prove nothing was created or overwritten."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def assert_one_error_line(rc, err, match=None):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    if match:
        assert re.search(match, lines[0]), lines[0]


@pytest.fixture
def rejected(capsys, tmp_path, monkeypatch):
    """rejected(args, match): run in tmp_path, expect the error, check that no file changed."""
    monkeypatch.chdir(tmp_path)

    def check(args, match=None):
        before = snapshot(tmp_path)
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert_one_error_line(rc, err, match)
        assert snapshot(tmp_path) == before, "a file was created or changed"
        return err
    return check


# ---------------------------------------------------------------------------------------------
# the main job, eval, sample

@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    """`tinyvae train` as the README runs it, kept small by options: few epochs, a small layer."""
    root = tmp_path_factory.mktemp("main")
    r = tinyvae_cmd("train", "--epochs", "4", "--hidden", "32", "--out", "run", cwd=root)
    return root / "run", r


def test_train_writes_the_run_directory_with_its_figures(main_run):
    run, r = main_run
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert str(run.name) in r.stdout and "done in" in r.stdout
    names = set(os.listdir(run))
    figures = {"reconstructions.png", "samples.png", "latent_space.png", "latent_manifold.png", "loss_curves.png"}
    assert {"model.npz", "history.csv"} | figures <= names
    for f in figures:
        data = (run / f).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, f
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert rows[0].split(",") == ["epoch", "loss", "rec", "kl", "val_loss", "val_rec", "val_kl"]
    assert [int(row.split(",")[0]) for row in rows[1:]] == [1, 2, 3, 4]
    losses = [float(row.split(",")[1]) for row in rows[1:]]
    assert losses[-1] < losses[0]
    model = tv.load(run)
    assert model.kind == "vae" and model.latent_dim == 2 and model.trainer.epoch == 4


def test_no_options_mean_a_vae_with_a_2d_latent_space_on_digits():
    from tinyvae.cli import build_parser
    from tinyvae.commands import _train_options
    opts = _train_options(build_parser().parse_args(["train"]))
    assert (opts["model"], opts["data"], opts["latent"], opts["likelihood"]) == ("vae", "digits", 2, "bernoulli")


def test_default_run_directories_are_fresh(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(["train", "--epochs", "1", "--hidden", "8", "--no-figures", "--no-progress"]) == 0
    assert sorted(os.listdir(tmp_path / "runs")) == ["vae-digits", "vae-digits-2"]
    out = capsys.readouterr().out
    assert os.path.join("runs", "vae-digits-2") in out


def test_eval_reports_the_negative_elbo_and_a_tighter_iwae_bound(main_run):
    run, _ = main_run
    r = tinyvae_cmd("eval", run, "--k", "200")
    assert r.returncode == 0, r.stderr
    assert "both bounds on the same images, all 297 images:" in r.stdout
    elbo = float(re.search(r"negative ELBO, mean of the k=200 log-weights\s*:\s+([\d.]+) nats", r.stdout).group(1))
    iwae = float(re.search(r"importance-weighted bound, k=200\s*:\s+([\d.]+) nats", r.stdout).group(1))
    assert 5 < iwae < elbo < 80                        # log p(x) >= IWAE_k >= ELBO, in nats per 8x8 image


def test_eval_repeats_the_test_elbo_train_printed_and_other_seeds_draw_anew(main_run, capsys):
    # a student compares the two numbers: by default eval's one-sample -ELBO uses the draws of z
    # that train used after its last epoch, so it is the figure train printed (to its 2 decimals)
    run, r = main_run
    printed = re.search(r"test -ELBO ([\d.]+) nats \(rec ([\d.]+) \+ KL ([\d.]+)\)", r.stdout)
    assert printed, r.stdout
    ones = {}
    for seed in (None, "0", "1"):
        assert main(["eval", str(run), "--k", "2"] + ([] if seed is None else ["--seed", seed])) == 0
        out = capsys.readouterr().out
        m = re.search(r"1 sample per image\s*:\s+([\d.]+) nats per image \(reconstruction ([\d.]+) \+ KL ([\d.]+)\)", out)
        ones[seed] = [float(v) for v in m.groups()]
        assert ("the draws of z that train used for its test -ELBO after epoch 4" in out) == (seed is None)
    for got, shown in zip(ones[None], printed.groups()):
        assert abs(got - float(shown)) <= 0.0051, (ones[None], printed.groups())
    assert ones["0"][1] != ones["1"][1] != ones[None][1] and ones["0"][2] == ones[None][2]   # the KL is exact


def test_eval_compares_the_elbo_and_the_iwae_bound_on_the_same_images(main_run, capsys):
    # --n 50 of the 297 test images: the bound on those 50 must be set beside the ELBO on those
    # 50 (not the ELBO of the whole test set, a different set of images), from the same draws
    run, _ = main_run
    model, x = tv.load(run), tv.load_dataset("digits").x_test
    for k in (100, 1):
        assert main(["eval", str(run), "--k", str(k), "--n", "50", "--seed", "3"]) == 0
        out = capsys.readouterr().out
        whole = float(re.search(r"negative ELBO, 1 sample per image\s*:\s+([\d.]+) nats", out).group(1))
        assert "both bounds on the same images, the first 50 of the 297 images" in out
        elbo = float(re.search(rf"negative ELBO, mean of the k={k} log-weights\s*:\s+([\d.]+) nats", out).group(1))
        iwae = float(re.search(rf"importance-weighted bound, k={k}\s*:\s+([\d.]+) nats", out).group(1))
        # recomputed by hand from the first 50 test images: log-weights of the same k draws
        rng = np.random.default_rng(3)
        mu, logvar = model.encode(x[:50].astype(np.float32))
        mu, logvar = mu.astype(np.float64), logvar.astype(np.float64)
        eps = rng.standard_normal((k, 50, mu.shape[1]))
        z = mu + np.exp(logvar / 2) * eps
        logits = model.decoder(z.reshape(-1, mu.shape[1]).astype(np.float32)).astype(np.float64).reshape(k, 50, -1)
        log_px_z = -np.sum(np.logaddexp(0, logits) - x[:50] * logits, axis=-1)
        log_w = log_px_z - 0.5 * np.sum(z**2, axis=-1) + 0.5 * np.sum(logvar + eps**2, axis=-1)
        iwae_hand = -np.mean(np.logaddexp.reduce(log_w, axis=0) - np.log(k))
        assert abs(elbo - -np.mean(log_w)) < 2e-3 and abs(iwae - iwae_hand) < 2e-3
        whole_set = -model.elbo(x, rng=np.random.default_rng(3)).mean()
        assert abs(whole - whole_set) < 1.5e-3
        if k == 1:
            assert iwae == elbo                     # one draw: the bound is the ELBO itself
        else:
            assert iwae < elbo - 0.3                # this small model's gap is about 1 nat


def test_a_long_eval_says_what_it_computes_and_shows_progress(main_run, capsys, monkeypatch):
    """k = 5000 for 1000 Fashion-MNIST images runs for minutes: without a terminal eval says what
    it is doing first, and the bound's progress bar counts the draws; the numbers are the same."""
    run, _ = main_run
    assert main(["eval", str(run), "--k", "20", "--n", "30"]) == 0
    quiet = capsys.readouterr()
    assert "computing the importance-weighted bound" not in quiet.err
    monkeypatch.setattr(commands, "SLOW_BOUND", 0)
    assert main(["eval", str(run), "--k", "20", "--n", "30"]) == 0
    told = capsys.readouterr()
    assert "computing the importance-weighted bound: 20 draws of z for each of 30 images ..." in told.err
    assert re.findall(r"[\d.]+ nats", told.out) == re.findall(r"[\d.]+ nats", quiet.out)   # the same numbers
    model, x = tv.load(run), tv.load_dataset("digits").x_test[:30]
    from tinyvae import train
    monkeypatch.setattr(train, "_bar_off", lambda progress: not progress)   # as on a terminal
    with_bar = model.log_likelihood(x, k=20, progress=True)
    bar = capsys.readouterr().err
    assert "log p(x), k=20" in bar and "/600" in bar                          # 30 images x 20 draws
    np.testing.assert_array_equal(with_bar, model.log_likelihood(x, k=20))
    assert capsys.readouterr().err == ""                                    # no bar unless asked


def test_eval_of_an_autoencoder_prints_its_reconstruction_loss(tmp_path, capsys):
    assert main(["train", "--model", "ae", "--epochs", "2", "--latent", "3", "--no-figures",
                 "--out", str(tmp_path / "ae"), *SMALL]) == 0
    out = capsys.readouterr().out
    assert "training an Autoencoder(" in out                      # not "a Autoencoder"
    hint = [line for line in out.splitlines() if line.startswith("next:")]
    assert hint == [f"next: tinyvae eval {tmp_path / 'ae'}"], out   # an autoencoder has no prior to sample
    assert main(["eval", str(tmp_path / "ae")]) == 0
    assert re.search(r"reconstruction loss [\d.]+ nats", capsys.readouterr().out)
    # the VAE's options would be silently ignored: they are refused instead
    assert main(["eval", str(tmp_path / "ae"), "--k", "10", "--seed", "3"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: --k and --seed apply to a VAE") and "drop them" in err and out == ""


def test_a_gaussian_vae_trains_evaluates_and_samples_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "g"
    assert main(["train", "--likelihood", "gaussian", "--sigma2", "0.1", "--epochs", "2",
                 "--out", str(run), *SMALL]) == 0
    capsys.readouterr()
    model = tv.load(run)
    assert model.likelihood == "gaussian" and model.sigma2 == pytest.approx(0.1)
    assert {"samples.png", "reconstructions.png", "latent_manifold.png"} <= set(os.listdir(run))
    assert main(["eval", str(run), "--k", "20", "--n", "10"]) == 0
    out = capsys.readouterr().out
    assert "sigma2=0.1" in out
    elbo_k = float(re.search(r"mean of the k=20 log-weights :\s+([\d.]+)", out).group(1))
    bound = float(re.search(r"importance-weighted bound, k=20\s+:\s+([\d.]+)", out).group(1))
    assert bound <= elbo_k                                   # -IWAE_k <= -ELBO on the same draws
    assert main(["sample", str(run), "--n", "4"]) == 0
    assert (run / "sample-seed0.png").exists()


def test_the_command_line_autoencoder_uses_tanh_unless_told(tmp_path):
    # its 2-unit code passes through the activation, and ReLU code units died (a constant output)
    from tinyvae.cli import build_parser
    from tinyvae.commands import _train_options
    parse = lambda *a: _train_options(build_parser().parse_args(["train", *a]))     # noqa: E731
    assert parse("--model", "ae")["activation"] == "tanh"
    assert parse("--model", "ae", "--activation", "relu")["activation"] == "relu"
    assert parse()["activation"] == parse("--model", "vae")["activation"] == "relu"


def test_a_single_sample_is_one_sample_and_its_title_is_not_cut_off(main_run, tmp_path, capsys):
    import matplotlib.image as mpimg
    from tinyvae import plots
    run, _ = main_run
    out = tmp_path / "one.png"
    assert main(["sample", str(run), "--n", "1", "--out", str(out)]) == 0
    assert re.match(r"1 sample from the prior", capsys.readouterr().out)
    fig = plots.plot_samples(tv.load(run), (8, 8), n=1, seed=0)
    fig.canvas.draw()
    title_px = fig.axes[0].title.get_window_extent().width * 110 / fig.dpi    # at the saved dpi
    assert mpimg.imread(out).shape[1] >= title_px                            # the whole title fits


def test_sample_caps_the_grid_size(main_run, rejected):
    from tinyvae.commands import MAX_SAMPLES
    run, _ = main_run
    before = snapshot(run)
    for n in (MAX_SAMPLES + 1, 100000):
        rejected(["sample", run, "--n", n], rf"--n {n} is too many for one grid: at most {MAX_SAMPLES}")
    assert snapshot(run) == before


def test_sample_writes_a_grid_and_never_overwrites_unless_forced(main_run, tmp_path, capsys):
    run, _ = main_run
    r = tinyvae_cmd("sample", run, "--n", "16", "--seed", "3")
    assert r.returncode == 0, r.stderr
    first = run / "sample-seed3.png"
    assert first.read_bytes()[:4] == b"\x89PNG"
    assert main(["sample", str(run), "--n", "16", "--seed", "3"]) == 0      # the name is taken: a new one
    assert first.read_bytes()[:4] == b"\x89PNG" and (run / "sample-seed3-2.png").exists()
    mine = tmp_path / "mine.png"
    mine.write_text("my own picture")
    capsys.readouterr()
    rc = main(["sample", str(run), "--out", str(mine)])
    assert_one_error_line(rc, capsys.readouterr().err, "--force")
    assert mine.read_text() == "my own picture"
    assert main(["sample", str(run), "--out", str(mine), "--force"]) == 0
    assert mine.read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------------------------------------
# Ctrl-C and --resume

# a run with many small minibatches (750 per epoch) and enough epochs that an interrupt sent
# just after the first epoch lands inside the run, even on a fast, quiet machine
SIGINT_EPOCHS = 8
SIGINT_RUN = ["train", "--epochs", str(SIGINT_EPOCHS), "--batch-size", "2", "--hidden", "16", "--no-figures", "--no-progress",
              "--checkpoint-every", "1000"]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """The uninterrupted run that interrupted-and-resumed runs must reproduce bit for bit."""
    root = tmp_path_factory.mktemp("straight")
    r = tinyvae_cmd(*SIGINT_RUN, "--out", "b", cwd=root)
    assert r.returncode == 0, r.stderr
    return root / "b"


def assert_same_run(a, b):
    resumed, straight = tv.load(a), tv.load(b)
    assert resumed.trainer.epoch == straight.trainer.epoch == SIGINT_EPOCHS
    assert np.array_equal(resumed.flat, straight.flat)
    assert np.array_equal(resumed.trainer.optimizer.m, straight.trainer.optimizer.m)
    assert (a / "history.csv").read_text() == (b / "history.csv").read_text()


@POSIX_ONLY
def test_sigint_to_the_real_command_saves_the_state_and_resume_is_bit_identical(tmp_path, straight_run):
    p = subprocess.Popen([sys.executable, "-m", "tinyvae", *SIGINT_RUN, "--out", "a"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stdout:                     # wait until training is under way: epoch 1 is done,
        if line.startswith("epoch"):          # then interrupt, landing inside epoch 2
            p.send_signal(signal.SIGINT)
            break
    out, err = p.communicate(timeout=120)
    assert p.returncode == -signal.SIGINT, err                # dies of it, after the save: a shell says 130
    assert "tinyvae train --resume a" in err and "Traceback" not in err
    stopped = tv.load(tmp_path / "a")
    position = (stopped.trainer.epoch, stopped.trainer.step)
    assert position >= (1, 0) and position[0] < SIGINT_EPOCHS, position        # stopped inside the run
    print("interrupted at (epochs done, minibatches into the next):", position)

    r = tinyvae_cmd("train", "--resume", "a", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same_run(tmp_path / "a", straight_run)


def test_sigint_in_the_middle_of_an_epoch_resumes_bit_identical(tmp_path, straight_run, monkeypatch, capsys):
    """A real SIGINT at a chosen minibatch (the 300th of epoch 2), in-process, then --resume."""
    from tinyvae.train import Trainer
    real = Trainer._accumulate

    def accumulate_then_interrupt(self, *args):
        real(self, *args)
        if (self.epoch, self.step) == (1, 300):
            signal.raise_signal(signal.SIGINT)
    monkeypatch.setattr(Trainer, "_accumulate", accumulate_then_interrupt)
    assert main([*SIGINT_RUN, "--out", str(tmp_path / "a")]) == 130
    assert "after minibatch 300 of epoch 2" in capsys.readouterr().err
    stopped = tv.load(tmp_path / "a")
    assert (stopped.trainer.epoch, stopped.trainer.step) == (1, 300)
    monkeypatch.undo()
    assert main(["train", "--resume", str(tmp_path / "a"), "--no-progress"]) == 0
    assert_same_run(tmp_path / "a", straight_run)


def test_ctrl_c_while_drawing_the_figures_and_resume_draws_them(tmp_path, monkeypatch, capsys):
    # the epochs are done and saved when Ctrl-C lands in the figures: --resume of that finished
    # run draws them (it would refuse a finished run whose figures are all there)
    from tinyvae import commands
    run = tmp_path / "fig"
    draw = commands.write_figures

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(commands, "write_figures", interrupted)
    assert main(["train", "--epochs", "2", "--hidden", "16", "--no-progress", "--out", f"{run}/"]) == 130
    err = capsys.readouterr().err
    assert "interrupted while drawing the figures" in err and f"tinyvae train --resume {run}/" in err
    assert sorted(os.listdir(run)) == ["history.csv", "model.npz"]
    saved = tv.load(run).flat.copy()
    monkeypatch.setattr(commands, "write_figures", draw)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "has finished its 2 epochs; writing its history and figures" in out and f"results in {os.path.join(run, '')}: " in out
    assert {"samples.png", "latent_manifold.png", "loss_curves.png"} <= set(os.listdir(run))
    assert np.array_equal(tv.load(run).flat, saved)                    # no further training
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert "finished its 2 epochs" in capsys.readouterr().err


def test_a_run_stopped_mid_epoch_is_not_finished_and_eval_does_not_claim_train_s_draws(tmp_path, monkeypatch,
                                                                                       capsys, rejected):
    from tinyvae.train import Trainer
    real = Trainer._accumulate

    def accumulate_then_interrupt(self, *args):
        real(self, *args)
        if (self.epoch, self.step) == (1, 2):
            raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "_accumulate", accumulate_then_interrupt)
    run = tmp_path / "mid"
    assert main(["train", "--epochs", "3", "--hidden", "16", "--no-progress", "--out", str(run)]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    # --epochs 1 is behind the saved position: refused, not taken for a finished run to draw
    rejected(["train", "--resume", run, "--epochs", "1"], "finished its 1 epochs")
    assert main(["eval", str(run), "--k", "2"]) == 0
    assert "the draws of z that train used" not in capsys.readouterr().out


def test_resume_keeps_the_run_options_and_refuses_a_finished_run(main_run, rejected):
    run, _ = main_run
    rejected(["train", "--resume", run, "--hidden", "64"], "drop --hidden")
    err = rejected(["train", "--resume", run, "--hidden", "64", "--no-figures"], "drop --hidden")
    assert "--no-figures may change" in err                  # it is accepted, so the message lists it
    rejected(["train", "--resume", run, "--no-figures", "--epochs", "2"], "finished its 4 epochs")
    rejected(["train", "--resume", run], "finished its 4 epochs")
    rejected(["train", "--resume", run / "model.npz"], "run directory")


def test_resume_of_a_missing_or_foreign_directory_says_only_what_resume_takes(tmp_path, rejected):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep")
    for where, what in ((tmp_path / "nope", "no such directory"), (tmp_path / "notes", "holds no model.npz")):
        err = rejected(["train", "--resume", where], rf"--resume .*{what}.*directory written by 'tinyvae train'")
        assert ".npz written by" not in err and "model.save" not in err      # --resume refuses an .npz


@pytest.mark.parametrize("command", [["train", "--epochs", "1"], ["eval", "RUN"], ["bench", "--epochs", "2"]])
def test_more_threads_than_cores_is_one_clear_error(command, main_run, rejected, monkeypatch):
    run, _ = main_run
    command = [str(run) if a == "RUN" else a for a in command]
    monkeypatch.setattr(commands, "usable_cores", lambda: 2)
    for n in ("3", "99"):
        rejected([*command, "--threads", n], rf"--threads {n} is more than this machine's 2 cores; "
                                             r"give at most --threads 2")
    monkeypatch.setattr(commands, "usable_cores", lambda: 1)
    rejected([*command, "--threads", "2"], r"more than this machine's 1 core; give at most --threads 1")


def test_a_run_resumed_on_fewer_cores_continues_with_the_core_count(tmp_path, monkeypatch, capsys):
    run = tmp_path / "r"
    monkeypatch.setattr(commands, "usable_cores", lambda: 2)       # the run starts on two cores
    assert main(["train", "--epochs", "1", "--hidden", "16", "--threads", "2", "--no-figures",
                 "--no-progress", "--out", str(run)]) == 0
    monkeypatch.setattr(commands, "usable_cores", lambda: 1)       # and continues on one
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "started with --threads 2; this machine has 1 core, so this session uses --threads 1" in err
    assert "differ from an uninterrupted run's, in the last bits at first" in err
    from tinyvae import checkpoint
    ck = checkpoint.read(run)
    assert ck.trainer.epoch == 2 and ck.run["threads"] == 2        # kept for the next session


def test_a_run_resumed_with_other_arithmetic_says_its_bits_change(tmp_path, monkeypatch, capsys, backend):
    """The kernel backend and the BLAS kernel (one per CPU family) decide the last bits; the run
    records them, and a resume under others says the results will differ from an uninterrupted
    run's, where the reproducibility promise would otherwise silently fail."""
    run = tmp_path / "r"
    assert main(["train", "--epochs", "1", "--hidden", "16", "--no-figures", "--no-progress", "--out", str(run)]) == 0
    from tinyvae import checkpoint
    recorded = checkpoint.read(run).run
    assert recorded["backend"] == tv.get_backend() and recorded["blas"] == commands.arithmetic()["blas"]
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert "note:" not in capsys.readouterr().err                     # the same machine: no note
    other = "numpy" if tv.get_backend() == "numba" else "numba"
    backend(other)
    monkeypatch.setattr(commands, "arithmetic", lambda: {"backend": other, "blas": "openblas 9.9 Elsewhere"})
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"started with backend {recorded['backend']!r}, this session {other!r} and blas" in err
    assert "'openblas 9.9 Elsewhere'" in err and "in the last bits at first and by more" in err
    assert checkpoint.read(run).run["backend"] == recorded["backend"]   # the run keeps where it began


def test_the_recorded_blas_is_numpy_s_even_when_scipy_s_is_listed_first(monkeypatch):
    """Once SciPy is loaded, threadpoolctl lists its own OpenBLAS (another version) too, and at
    times first: a run and its resume on one machine had recorded different BLAS and printed a
    false note that the bits would change."""
    import threadpoolctl
    site = os.path.dirname(os.path.dirname(np.__file__))          # e.g. .../numpy-course/.venv/.../site-packages
    scipy_blas = {"user_api": "blas", "internal_api": "openblas", "version": "0.3.30", "architecture": "Haswell",
                  "filepath": os.path.join(site, "scipy.libs", "libscipy_openblas.so")}
    numpy_blas = {"user_api": "blas", "internal_api": "openblas", "version": "0.3.31", "architecture": "SkylakeX",
                  "filepath": os.path.join(site, "numpy.libs", "libscipy_openblas64_.so")}
    for listed in ([scipy_blas, numpy_blas], [numpy_blas, scipy_blas]):
        monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: listed)
        assert commands.arithmetic()["blas"] == "openblas 0.3.31 SkylakeX"
    # a BLAS outside NumPy's package (a system or conda library) is not told apart from SciPy's
    system = dict(numpy_blas, filepath=os.path.join(os.sep, "usr", "lib", "libopenblas.so"))
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [scipy_blas, system])
    assert commands.arithmetic()["blas"] == "unknown BLAS"


def test_a_run_whose_data_file_has_gone_says_what_to_do(tmp_path, capsys):
    data = tmp_path / "images.npy"
    np.save(data, np.random.default_rng(0).uniform(size=(60, 16)))
    run = tmp_path / "r"
    assert main(["train", "--data", str(data), "--epochs", "1", "--no-figures", "--out", str(run), *SMALL]) == 0
    data.unlink()
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert_one_error_line(2, err, r"images\.npy, is no longer there; pass --data NAME_OR_PATH")
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert_one_error_line(2, err, r"is no longer there; put it back to continue the run")


def test_threads_up_to_the_core_count_are_accepted(monkeypatch):
    from tinyvae.commands import thread_count
    monkeypatch.setattr(commands, "usable_cores", lambda: 4)
    assert [thread_count("--threads", n) for n in ("1", "4")] == [1, 4]


# ---------------------------------------------------------------------------------------------
# bad input, one test per category

def idx_bytes(array, dims):
    return bytes([0, 0, 0x08, dims]) + struct.pack(">" + "I" * dims, *array.shape) + array.tobytes()


def idx_dir(root, n_train=20, n_train_labels=20, images=None):
    """A directory of the four IDX files (the test images gzipped), optionally with one file replaced."""
    d = root / "idx"
    d.mkdir()
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_train, 4, 4), dtype=np.uint8), 3),
        "train-labels-idx1-ubyte": idx_bytes(rng.integers(0, 10, n_train_labels, dtype=np.uint8), 1),
        "t10k-images-idx3-ubyte.gz": gzip.compress(idx_bytes(rng.integers(0, 256, (5, 4, 4), dtype=np.uint8), 3)),
        "t10k-labels-idx1-ubyte": idx_bytes(rng.integers(0, 10, 5, dtype=np.uint8), 1),
    }
    if images is not None:
        files["train-images-idx3-ubyte"] = images
    for name, data in files.items():
        (d / name).write_bytes(data)
    return d


def test_the_idx_fixture_itself_trains(tmp_path, capsys):
    """The bad-IDX tests below differ from a good directory in one file only."""
    assert main(["train", "--data", str(idx_dir(tmp_path)), "--epochs", "1", "--no-figures",
                 "--out", str(tmp_path / "ok"), *SMALL]) == 0


def test_unreadable_idx_file(tmp_path, rejected):
    d = idx_dir(tmp_path, images=b"\x1f\x8b" + b"not really gzip" * 10)
    rejected(["train", "--data", d], "damaged or truncated gzip")


def test_truncated_idx_file(tmp_path, rejected):
    good = idx_bytes(np.zeros((20, 4, 4), np.uint8), 3)
    d = idx_dir(tmp_path, images=good[:-7])
    rejected(["train", "--data", d], "truncated")


def test_wrongly_headed_idx_file(tmp_path, rejected):
    d = idx_dir(tmp_path, images=b"\x50\x4b\x03\x04" + bytes(400))
    rejected(["train", "--data", d], "not an IDX file")


def test_image_and_label_counts_disagree(tmp_path, rejected):
    d = idx_dir(tmp_path, n_train=20, n_train_labels=19)
    rejected(["train", "--data", d], "20 images but .* 19 labels")


def test_array_with_nan_or_inf(tmp_path, rejected):
    x = np.random.default_rng(0).uniform(size=(30, 16)).astype(np.float32)
    x[4, 2], x[7, 1] = np.nan, np.inf
    np.save(tmp_path / "x.npy", x)
    rejected(["train", "--data", tmp_path / "x.npy"], "NaN or infinite")


def test_array_of_the_wrong_dimensionality(tmp_path, rejected):
    np.save(tmp_path / "flat.npy", np.linspace(0, 1, 40))
    rejected(["train", "--data", tmp_path / "flat.npy"], "shape")


def test_values_outside_the_unit_interval_for_a_bernoulli_decoder(tmp_path, rejected):
    np.save(tmp_path / "big.npy", np.random.default_rng(0).uniform(0, 3, size=(30, 16)))
    rejected(["train", "--data", tmp_path / "big.npy"], r"outside \[0, 1\]|\[0, 1\]")


def test_pickled_object_array(tmp_path, rejected):
    np.save(tmp_path / "obj.npy", np.array([[1.0, "a"], [0.5, None]], dtype=object), allow_pickle=True)
    rejected(["train", "--data", tmp_path / "obj.npy"], "pickle")


def test_non_positive_or_non_finite_hyperparameters(rejected):
    for option, value in [("--lr", "0"), ("--lr", "-1e-3"), ("--lr", "nan"), ("--lr", "inf"),
                          ("--epochs", "0"), ("--batch-size", "-5"), ("--beta", "-1"), ("--latent", "0")]:
        rejected(["train", option, value], re.escape(option))


def test_malformed_option_values(rejected):
    for args, match in [(["--hidden", "4x"], "--hidden"), (["--hidden", "64,,32"], "--hidden"),
                        (["--latent", "two"], "--latent"), (["--epochs", "1.5"], "--epochs"),
                        (["--model", "gan"], "--model"), (["--likelihood", "poisson"], "--likelihood"),
                        (["--binarize", "yes"], "--binarize"), (["--beta", "1", "--model", "ae"], "VAE only"),
                        (["--frobnicate"], "unrecognized")]:
        rejected(["train", *args], match)


def test_eval_with_data_of_another_width_says_to_pass_the_training_data(main_run, tmp_path, rejected):
    run, _ = main_run
    np.save(tmp_path / "f10.npy", np.random.default_rng(0).uniform(size=(40, 10)).astype(np.float32))
    err = rejected(["eval", run, "--data", tmp_path / "f10.npy"], r"have 10 values per image .* expects 64")
    assert "pass the --data the model" in err and "digits" in err and "build the model" not in err


def test_an_unknown_option_points_at_the_subcommands_help(rejected):
    rejected(["train", "--frobnicate"], r"unrecognized arguments: --frobnicate .*'tinyvae train --help'")
    rejected(["eval", "somewhere", "--frobnicate"], r"'tinyvae eval --help'")
    rejected(["--frobnicate"], r"'tinyvae --help'")


def test_every_subcommand_has_a_description_in_its_help():
    from tinyvae.cli import build_parser
    commands = build_parser().subcommands
    assert {"train", "eval", "sample", "gradcheck", "figures", "lesson", "bench"} <= set(commands)
    for name, parser in commands.items():
        assert parser.description and len(parser.description) > 40, name


def test_unknown_dataset_name(rejected):
    rejected(["train", "--data", "cifar-100"], "unknown dataset 'cifar-100'")


def test_a_missing_data_path_says_what_data_can_be(rejected):
    rejected(["train", "--data", "/nonexistent/path"],
             r"no such file or directory: /nonexistent/path; give a dataset name \(digits, mnist, "
             r"fashion-mnist\), a directory of IDX files or a \.npy/\.npz image array")


@pytest.mark.parametrize("loss, likelihood", [("bce", "bernoulli"), ("mse", "gaussian")])
def test_an_autoencoder_loss_for_the_vae_names_its_vae_equivalent(rejected, loss, likelihood):
    err = rejected(["train", "--likelihood", loss], rf"--likelihood {loss} names an autoencoder loss \(--model ae\)")
    assert f"use --likelihood {likelihood}" in err and "bernoulli (its bce) and gaussian (its mse)" in err
    from tinyvae.autoencoder import LOSSES
    from tinyvae.vae import LIKELIHOODS
    err = rejected(["train", "--likelihood", "poisson"], f"must be one of {', '.join(LIKELIHOODS)} for the VAE")
    assert f"--model ae, also takes {', '.join(LOSSES)}" in err and {"bce", "mse"} == set(LOSSES)


def test_train_help_lists_every_activation_likelihood_and_loss(capsys):
    """The help texts spell the choices out; a name added to the tuples must appear there too."""
    from tinyvae.autoencoder import LOSSES
    from tinyvae.kernels import ACTIVATIONS
    from tinyvae.vae import LIKELIHOODS
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    activation = text[text.index("--activation"):]
    likelihood = text[text.index("--likelihood"):]
    for name in ACTIVATIONS:
        assert f"{name} |" in activation or f"| {name}" in activation, name
    for name in LIKELIHOODS + LOSSES:
        assert f"{name} |" in likelihood or f"| {name}" in likelihood, name


def test_an_autoencoder_gets_its_own_check_of_an_unknown_loss(monkeypatch, rejected):
    """A likelihood the VAE knows but the autoencoder has no loss for is the autoencoder's error,
    not a KeyError traceback from the name mapping."""
    from tinyvae import vae
    monkeypatch.setattr(vae, "LIKELIHOODS", vae.LIKELIHOODS + ("laplace",))
    rejected(["train", "--model", "ae", "--likelihood", "laplace"], "loss")


def test_output_path_that_is_a_file_or_a_full_directory(tmp_path, rejected):
    (tmp_path / "taken.txt").write_text("keep me")
    rejected(["train", "--out", tmp_path / "taken.txt"], "is an existing file")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("keep me too")
    rejected(["train", "--out", tmp_path / "full"], "not empty")
    rejected(["train", "--out", tmp_path / "taken.txt" / "sub"], "is a file")
    rejected(["train", "--out", ""], "--out is empty")


def test_corrupt_checkpoint(main_run, tmp_path, rejected):
    run, _ = main_run
    bad = tmp_path / "badrun"
    bad.mkdir()
    data = (run / "model.npz").read_bytes()
    (bad / "model.npz").write_bytes(data[: len(data) // 2])
    for cmd in (["eval", bad], ["sample", bad], ["train", "--resume", bad]):
        rejected(cmd, "damaged or truncated")


def test_foreign_checkpoint(tmp_path, rejected):
    np.savez(tmp_path / "weights.npz", W=np.ones((4, 4)), b=np.zeros(4))
    (tmp_path / "notes.npz").write_text("hello")
    rejected(["eval", tmp_path / "weights.npz"], "not a tinyvae checkpoint")
    rejected(["sample", tmp_path / "notes.npz"], "not a tinyvae checkpoint")
    rejected(["eval", tmp_path], "not a tinyvae run directory")


def test_mismatched_checkpoint(main_run, tmp_path, rejected):
    import json
    run, _ = main_run
    with np.load(run / "model.npz") as z:
        arrays = {k: z[k] for k in z.files}
    config = json.loads(str(arrays["config"]))
    arrays["config"] = np.array(json.dumps(dict(config, latent_dim=3)))
    (tmp_path / "mixed").mkdir()
    np.savez(tmp_path / "mixed" / "model.npz", **arrays)
    rejected(["eval", tmp_path / "mixed"], "corrupt or mismatched")
    rejected(["train", "--resume", tmp_path / "mixed"], "corrupt or mismatched")


def test_a_failed_checkpoint_write_is_not_blamed_on_the_learning_rate(tmp_path, capsys, monkeypatch):
    from tinyvae import checkpoint
    real, calls = checkpoint._atomic_savez, []

    def full_disk(path, arrays):
        calls.append(path)
        if len(calls) == 3:
            raise tv.TinyVAEError(f"cannot write {path}: No space left on device; choose a writable location")
        real(path, arrays)
    monkeypatch.setattr(checkpoint, "_atomic_savez", full_disk)
    rc = main(["train", "--epochs", "5", "--checkpoint-every", "1", "--no-figures", "--out", str(tmp_path / "r"),
               *SMALL])
    err = capsys.readouterr().err
    assert_one_error_line(rc, err, "No space left on device.*last good checkpoint")
    assert "--lr" not in err


def test_a_loss_that_becomes_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "nan"
    rc = main(["train", "--optimizer", "sgd", "--lr", "1e4", "--epochs", "5", "--no-figures",
               "--out", str(out), *SMALL])
    err = capsys.readouterr().err
    assert_one_error_line(rc, err, "lower the learning rate.*last good checkpoint.*start a new run with a lower --lr")
    model = tv.load(out)
    assert np.all(np.isfinite(model.flat)) and model.trainer.epoch == 0


def test_the_real_command_prints_one_line_and_no_traceback(tmp_path):
    """End to end through the console entry point (python -m tinyvae), not just main()."""
    (tmp_path / "notes.npz").write_text("hello")
    for args in (["train", "--lr", "-1"], ["eval", tmp_path / "notes.npz"], ["train", "--data", "nosuch"]):
        r = tinyvae_cmd(*args, cwd=tmp_path)
        assert_one_error_line(r.returncode, r.stderr)
    assert sorted(os.listdir(tmp_path)) == ["notes.npz"]


def test_an_invalid_backend_variable_is_one_clear_error():
    env = {**os.environ, "TINYVAE_BACKEND": "fortran"}
    r = subprocess.run([sys.executable, "-m", "tinyvae", "gradcheck", "--model", "layers", "--quiet"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "error: TINYVAE_BACKEND='fortran' is not a backend" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_closed_pipe_ends_quietly():
    # tinyvae gradcheck | head -0: the reader is gone before the first line is written
    p = subprocess.Popen([sys.executable, "-m", "tinyvae", "gradcheck", "--model", "layers"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_the_epoch_line_leaves_out_terms_the_epoch_lacks():
    from tinyvae.commands import _describe
    line = _describe({"epoch": 3, "loss": 25.0, "rec": 20.0, "kl": 5.0,
                      "val_loss": float("nan"), "val_rec": float("nan"), "val_kl": float("nan")})
    assert line == "loss 25.000  (rec 20.000, kl 5.000)"
    assert "val 26.500" in _describe({"epoch": 3, "loss": 25.0, "val_loss": 26.5})


# --------------------------------------------------------------------------------------------
# the run directory from the file system's side: locks, failed writes, signals, paths

def _hold_lock(run):
    """Take the run directory's lock as another 'tinyvae train' would; returns the open fd."""
    import fcntl
    fd = os.open(os.path.join(run, commands.LOCK), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"4242\n")
    return fd


def test_no_command_prints_the_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


def test_version():
    r = tinyvae_cmd("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"tinyvae {tv.__version__}"


def test_ctrl_c_outside_training_exits_130(tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    assert main(["train", "--epochs", "1", "--no-figures", "--out", str(run), *SMALL]) == 0
    capsys.readouterr()

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(commands, "_load_run", ctrl_c)
    assert main(["eval", str(run)]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


@POSIX_ONLY
def test_a_lock_file_that_is_a_symbolic_link_is_not_followed(main_run, tmp_path, capsys):
    """A run directory from elsewhere holding a link at the lock's name had the pid written over
    the file it pointed to."""
    import shutil as sh
    victim = tmp_path / "victim.txt"
    victim.write_text("IMPORTANT")
    for name, make in (("resumed", lambda d: sh.copytree(main_run[0], d)), ("fresh", lambda d: d.mkdir())):
        run = tmp_path / name
        make(run)
        (run / commands.LOCK).symlink_to(victim)
        argv = (["train", "--resume", str(run), "--epochs", "5", "--no-progress"] if name == "resumed"
                else ["train", "--out", str(run), *SMALL])
        assert main(argv) == 2
        assert "is a symbolic link, not tinyvae's lock file" in capsys.readouterr().err
        assert victim.read_text() == "IMPORTANT"


@POSIX_ONLY
def test_a_run_directory_in_use_is_refused_and_its_files_kept(tmp_path, capsys):
    """Two runs given one --out, or a --resume of a run still training, had both written into it
    (the second run's results silently replaced the first's)."""
    run = tmp_path / "r"
    assert main(["train", "--epochs", "2", "--no-figures", "--out", str(run), *SMALL]) == 0
    capsys.readouterr()
    assert sorted(os.listdir(run)) == ["history.csv", "model.npz"]           # no lock file left behind
    fd = _hold_lock(run)
    try:
        before = snapshot(run)
        assert_one_error_line(main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]),
                              capsys.readouterr().err, r"in use by another 'tinyvae train' \(pid 4242\)")
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        fd2 = _hold_lock(fresh)
        assert_one_error_line(main(["train", "--epochs", "2", "--out", str(fresh), *SMALL]),
                              capsys.readouterr().err, "in use by another")
        os.close(fd2)
        assert snapshot(run) == before
    finally:
        os.close(fd)


def test_default_run_directories_are_taken_atomically(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = [commands._fresh_run_dir("vae", "digits") for _ in range(3)]
    assert names == [os.path.join("runs", "vae-digits")] + [os.path.join("runs", f"vae-digits-{i}") for i in (2, 3)]
    assert all(os.path.isdir(n) for n in names)


def test_a_run_name_taken_between_the_check_and_the_mkdir_is_not_shared(tmp_path, monkeypatch):
    """Atomically: another run that creates runs/vae-digits just before this one does must leave
    this one the next name, not the same folder (a check-then-create had passed the test above)."""
    monkeypatch.chdir(tmp_path)
    real, first = os.makedirs, os.path.join("runs", "vae-digits")

    def racing(path, *args, **kwargs):
        if os.fspath(path) == first and not os.path.isdir(path):
            real(path)                                   # another run takes the name first
        return real(path, *args, **kwargs)
    monkeypatch.setattr(commands.os, "makedirs", racing)
    assert commands._fresh_run_dir("vae", "digits") == os.path.join("runs", "vae-digits-2")


def test_a_history_that_cannot_be_written_is_one_error_and_resume_writes_it(tmp_path, capsys):
    """A failed history.csv write had ended in a traceback and left a stale history that --resume
    (of a run then finished) never rewrote."""
    run = tmp_path / "r"
    assert main(["train", "--epochs", "2", "--no-figures", "--out", str(run), *SMALL]) == 0
    capsys.readouterr()
    os.remove(run / "history.csv")
    (run / "history.csv").mkdir()                         # the rename onto it fails, as on a full disk
    rc = main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"])
    assert_one_error_line(rc, capsys.readouterr().err, r"cannot write .*history\.csv")
    assert sorted(os.listdir(run)) == ["history.csv", "model.npz"]           # no temporary file left
    assert tv.load(run).trainer.epoch == 3
    (run / "history.csv").rmdir()
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 0
    assert "writing its history and figures" in capsys.readouterr().out
    assert commands.read_history_csv(run / "history.csv")["epoch"] == [1, 2, 3]


def test_a_figure_that_cannot_be_written_is_one_error_saying_how_to_draw_it(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", "--epochs", "2", "--out", str(run), *SMALL]) == 0
    capsys.readouterr()
    os.remove(run / "samples.png")
    os.remove(run / "reconstructions.png")
    (run / "reconstructions.png").mkdir()                 # a figure whose file cannot be replaced
    rc = main(["train", "--resume", str(run), "--no-progress"])
    assert_one_error_line(rc, capsys.readouterr().err,
                          r"cannot write .*reconstructions\.png.*draw them with: tinyvae train --resume")
    assert not [n for n in os.listdir(run) if n.endswith(".tmp")]


def test_ctrl_c_in_the_middle_of_a_png_leaves_no_half_figure(tmp_path, capsys, monkeypatch):
    """A half-written PNG had counted as drawn, so --resume refused to draw it again."""
    from matplotlib.figure import Figure

    def half_then_ctrl_c(self, f, **kwargs):
        f.write(b"\x89PNG\r\n\x1a\n half")
        raise KeyboardInterrupt
    monkeypatch.setattr(Figure, "savefig", half_then_ctrl_c)
    run = tmp_path / "r"
    assert main(["train", "--epochs", "2", "--out", str(run), *SMALL]) == 130
    assert "interrupted while drawing the figures" in capsys.readouterr().err
    assert sorted(os.listdir(run)) == ["history.csv", "model.npz"]
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "reconstructions.png" in os.listdir(run)


@pytest.mark.parametrize("figures", [True, False])
def test_ctrl_c_during_the_last_save_is_not_swallowed(tmp_path, capsys, monkeypatch, figures):
    from tinyvae import checkpoint
    real = checkpoint.save

    def save_then_ctrl_c(model, path, trainer_state=None, run=None):
        out = real(model, path, trainer_state, run)
        if trainer_state.epoch == 2:
            signal.raise_signal(signal.SIGINT)
        return out
    monkeypatch.setattr(checkpoint, "save", save_then_ctrl_c)
    run = tmp_path / "r"
    no_figures = [] if figures else ["--no-figures"]
    assert main(["train", "--epochs", "2", "--checkpoint-every", "5", "--out", str(run), *no_figures, *SMALL]) == 130
    err = capsys.readouterr().err
    if figures:
        assert "interrupted while drawing the figures" in err and "draw them with" in err
    else:                                   # no figures to draw: no advice to draw them
        assert "interrupted after the last epoch: the trained model is saved" in err and "--resume" not in err
    assert sorted(os.listdir(run)) == ["history.csv", "model.npz"] and tv.load(run).trainer.epoch == 2


@POSIX_ONLY
def test_a_resume_waits_for_no_one_it_holds_the_run_while_it_reads_it(tmp_path, capsys, monkeypatch):
    """A --resume had read the checkpoint before taking the lock: another --resume finishing in
    that window was then overwritten from the older state."""
    run = tmp_path / "r"
    assert main(["train", "--epochs", "2", "--no-figures", "--out", str(run), *SMALL]) == 0
    capsys.readouterr()
    real, inner = commands._load_data, []

    def load_while_another_resumes(opts):
        inner.append(main(["train", "--resume", str(run), "--epochs", "6", "--no-progress"]))
        return real(opts)
    monkeypatch.setattr(commands, "_load_data", load_while_another_resumes)
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 0
    assert inner == [2] and "in use by another 'tinyvae train'" in capsys.readouterr().err
    assert tv.load(run).trainer.epoch == 3


@POSIX_ONLY
def test_a_file_system_without_locks_still_trains(tmp_path, capsys, monkeypatch):
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    run = tmp_path / "r"
    assert main(["train", "--epochs", "1", "--no-figures", "--out", str(run), *SMALL]) == 0
    assert sorted(os.listdir(run)) == ["history.csv", "model.npz"]


def test_a_terminal_that_has_gone_does_not_turn_a_stop_into_a_traceback(monkeypatch):
    from tinyvae.interrupts import report

    class Gone:
        def write(self, text):
            raise OSError(5, "Input/output error")
        flush = write
    monkeypatch.setattr(sys, "stderr", Gone())
    report("stopped by SIGHUP")                          # no exception


def test_a_stop_whose_pipe_reader_died_with_it_keeps_its_status(monkeypatch):
    """Ctrl-C on 'tinyvae train 2>&1 | tee log' also ends tee: the stop's message then meets a
    closed pipe. It goes to the terminal instead, and the stop is not turned into 141."""
    import builtins

    from tinyvae.interrupts import report

    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")
        flush = write
    monkeypatch.setattr(sys, "stderr", Closed())
    with pytest.raises(BrokenPipeError):
        report("a line of output")                       # an ordinary line: the caller ends quietly
    shown = []
    real_open = builtins.open

    def fake_open(name, *args, **kwargs):
        if name == "/dev/tty":
            import io
            tty = io.StringIO()
            tty.close = lambda: shown.append(tty.getvalue())
            return tty
        return real_open(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", fake_open)
    report("interrupted after epoch 3: ... continue with: tinyvae train --resume r", stop=True)
    assert shown == ["interrupted after epoch 3: ... continue with: tinyvae train --resume r\n"]


@POSIX_ONLY
def test_sigterm_stops_training_like_ctrl_c(tmp_path):
    """kill, timeout or a closed terminal had killed the run without a word, losing every epoch
    since the last periodic checkpoint."""
    run = tmp_path / "term"
    proc = subprocess.Popen([sys.executable, "-m", "tinyvae", "train", "--epochs", "3000", "--hidden", "32",
                             "--no-progress", "--no-figures", "--checkpoint-every", "10000", "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    try:
        for line in proc.stdout:                        # the first epoch's line: training is under way
            if line.startswith("epoch"):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM, err            # dies of it, after the save: a shell says 143
    assert "Traceback" not in err and re.search(r"stopped by SIGTERM after .*tinyvae train --resume", err), err
    assert tv.load(run).trainer.epoch >= 1                  # the exact state, not the epoch-0 checkpoint


@POSIX_ONLY
def test_sighup_during_fit_saves_the_checkpoint_and_raises(tmp_path):
    """Under the command line (which turns SIGHUP into Interrupted), fit defers it like Ctrl-C.
    A program of the user's own keeps the signal's own behaviour (tested in a child below)."""
    from tinyvae.interrupts import raise_interrupt
    ds = tv.load_dataset("digits")
    vae = tv.VAE(64, hidden_dims=(16,), latent_dim=2)

    def hang_up(trainer):
        if trainer.n_steps == 3:
            os.kill(os.getpid(), signal.SIGHUP)
    previous = signal.signal(signal.SIGHUP, raise_interrupt)    # as the command line sets it
    try:
        with pytest.raises(KeyboardInterrupt) as e:
            tv.fit(vae, ds.x_train, epochs=2, batch_size=64, progress=False, callback=hang_up,
                   checkpoint=tmp_path / "m.npz")
        assert signal.getsignal(signal.SIGHUP) is raise_interrupt          # restored
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert getattr(e.value, "signum", None) == signal.SIGHUP
    assert tv.load(tmp_path / "m.npz").trainer.n_steps == 3


@POSIX_ONLY
@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_one_ctrl_c_stops_a_shell_loop_of_runs(tmp_path):
    """bash goes on with a loop after a program that caught Ctrl-C and exited 130; it stops
    only when the program dies of SIGINT, which the command does once its state is saved.
    (3000 epochs: the signal must land while it trains, however slow a loaded machine is.)"""
    loop = (f"for s in 1 2; do {shlex.quote(sys.executable)} -m tinyvae train --epochs 3000 --hidden 16 "
            "--no-figures --no-progress --out r$s; done; echo after-loop")
    p = subprocess.Popen(["bash", "-c", loop], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        for line in p.stdout:
            if line.startswith("epoch"):                  # the first run is training:
                os.killpg(p.pid, signal.SIGINT)           # Ctrl-C in a terminal reaches the whole group
                break
        out = p.communicate(timeout=120)[0]
    finally:
        p.kill()
    assert "continue with: tinyvae train --resume r1" in out, out
    assert "after-loop" not in out and not (tmp_path / "r2").exists(), out
    assert p.returncode == -signal.SIGINT


@POSIX_ONLY
def test_a_script_of_the_user_s_own_still_dies_by_sigterm(tmp_path):
    """fit in a plain script leaves SIGTERM alone: the process ends by the signal, as schedulers
    and 'timeout' expect (an exception and exit status 1 would look like a crash)."""
    script = ("import os, signal, tinyvae as tv\n"
              "ds = tv.load_dataset('digits')\n"
              "def term(t):\n    if t.n_steps == 2: os.kill(os.getpid(), signal.SIGTERM)\n"
              "tv.fit(tv.VAE(64, hidden_dims=(8,)), ds.x_train, epochs=1, progress=False, callback=term)\n"
              "print('not reached')\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                       preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    assert r.returncode == -signal.SIGTERM and "not reached" not in r.stdout, r.stderr


@pytest.mark.parametrize("argv, says", [
    (["trian"], "invalid choice: 'trian' .*; did you mean 'train'\\? \\(see 'tinyvae --help'\\)$"),
    (["Sample"], "did you mean 'sample'"),
    (["eval", "run", "--K", "10"], "unrecognized arguments: --K 10; did you mean '--k'\\? \\(see 'tinyvae eval --help'\\)$"),
    (["train", "--epohcs=3"], "did you mean '--epochs'"),
])
def test_a_typo_gets_the_nearest_command_or_option(argv, says, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(says, err), err


def test_the_folder_of_the_runs_names_the_runs_in_it(main_run, tmp_path, capsys):
    import shutil as sh
    runs = tmp_path / "runs"
    for name in ("b", "a"):
        sh.copytree(main_run[0], runs / name)
    (runs / "notes").mkdir()
    assert main(["sample", str(runs)]) == 2
    err = capsys.readouterr().err
    assert f"but the runs {runs / 'a'}, {runs / 'b'}: give one of them" in err and "notes" not in err


def test_the_suggestion_reads_choices_quoted_or_not(capsys):
    from tinyvae.cli import _Parser
    for listed in ("'gradcheck', 'train', 'eval'", "gradcheck, train, eval"):   # Python 3.12.4+ drops the quotes
        with pytest.raises(tv.TinyVAEError, match="did you mean 'train'"):
            _Parser(prog="tinyvae").error(f"argument COMMAND: invalid choice: 'trian' (choose from {listed})")


def test_no_suggestion_when_nothing_is_close(capsys):
    assert main(["xyzzy"]) == 2
    assert "did you mean" not in capsys.readouterr().err


def test_suggested_commands_quote_paths_for_the_shell_they_will_be_pasted_into():
    from tinyvae.commands import shell_quote
    assert shell_quote("runs/vae-digits", windows=False) == "runs/vae-digits"
    assert shell_quote("my run's", windows=False) == """'my run'"'"'s'"""
    assert shell_quote(r"runs\vae-digits", windows=True) == r"runs\vae-digits"     # cmd.exe keeps '' as text
    assert shell_quote(r"C:\my runs\a", windows=True) == r'"C:\my runs\a"'


def test_paths_with_a_tilde_spaces_or_leftovers(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "1", "--out", "~/my run", *SMALL]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "home" / "my run" / "model.npz").exists() and not (tmp_path / "~").exists()
    home_run = str(tmp_path / "home" / "my run")
    assert f"next: tinyvae eval '{home_run}'" in out                          # quoted for the shell
    assert main(["eval", "~/my run"]) == 0
    capsys.readouterr()
    # the temporary file of a write killed outright does not make a directory 'not empty'
    left = tmp_path / "left"
    left.mkdir()
    (left / ".model.npz.abc123.tmp").write_bytes(b"half")
    assert main(["train", "--epochs", "1", "--no-figures", "--out", str(left), *SMALL]) == 0
    assert sorted(os.listdir(left)) == ["history.csv", "model.npz"]


@POSIX_ONLY
def test_clearer_messages_about_run_directories(tmp_path, rejected, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep")
    rejected(["train", "--out", tmp_path / "notes"], r"exists and is not empty; choose a new directory$")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-links"          # outside what rejected snapshots
    elsewhere.mkdir()
    os.symlink(elsewhere / "nowhere", elsewhere / "dangling")
    assert_one_error_line(main(["train", "--out", str(elsewhere / "dangling")]), capsys.readouterr().err,
                          "broken symbolic link")
    assert not (elsewhere / "nowhere").exists()
    rejected(["train", "--resume", tmp_path / "notes" / "mine.txt"], "give the directory that 'tinyvae train' wrote")
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "history.csv").write_text("epoch,loss\n1,2.0\n")
    rejected(["eval", tmp_path / "gone"], "holds the history of a run but no model.npz")


@POSIX_ONLY
@pytest.mark.parametrize("delay", [0.0, 0.15, 0.4])
def test_ctrl_c_while_the_command_starts_is_reported_without_a_traceback(tmp_path, delay):
    """The library (numba, matplotlib) loads in main's first half second; a Ctrl-C then printed a
    traceback, or crashed the interpreter inside a C extension's import. The child says when its
    main() has begun, so the signal lands after Python's own start-up, whatever the load."""
    import time
    # 'ready' is said from inside main's handling, so a signal landing right after it is main's
    # to report (said before main, the signal could land between the two lines of the script)
    script = ("import sys, tinyvae.cli as cli\n"
              "command = cli._main\n"
              "def announced(argv):\n"
              "    print('ready', file=sys.stderr, flush=True)\n"
              "    return command(argv)\n"
              "cli._main = announced\n"
              f"sys.exit(cli.main(['train', '--epochs', '2000', '--no-figures', '--out', {str(tmp_path / 'r')!r},"
              " '--hidden', '32', '--no-progress']))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    # 130, or death by SIGINT itself, which a shell also reports as 130: CPython ends that way
    # when the KeyboardInterrupt went through an exec() inside a library's import (SciPy's)
    assert proc.returncode in (130, -signal.SIGINT), (out, err)
    assert "Traceback" not in err and "interrupted" in err
