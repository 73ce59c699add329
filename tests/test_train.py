"""fit and the Trainer: same seed same bits, continuation, history, Ctrl-C mid-epoch, NaN stops."""
import copy
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import tinyvae as tv
from tinyvae.errors import TinyVAEError
from tinyvae.train import Trainer, check_data
from tinyvae.vae import LIKELIHOODS


@pytest.fixture(scope="module")
def digits():
    ds = tv.load_dataset("digits")
    return ds.x_train[:300], ds.x_test[:100]


def small_vae(seed=0, **kw):
    return tv.VAE(input_dim=64, hidden_dims=(32,), latent_dim=2, seed=seed, **kw)


def small_ae(**kw):
    return tv.Autoencoder(input_dim=64, hidden_dims=(32,), code_dim=4, **kw)


# ---------------------------------------------------------------------------------------------
# reproducibility and continuation

def test_same_seed_gives_the_same_bits_and_another_seed_does_not(digits):
    x, xv = digits
    runs = []
    for seed in (0, 0, 1):
        vae = small_vae()
        h = tv.fit(vae, x, epochs=3, batch_size=64, seed=seed, x_val=xv, progress=False)
        runs.append((vae.flat.copy(), h))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert not np.array_equal(runs[0][0], runs[2][0])            # the seed reaches the noise and order


def test_fit_again_continues_the_optimizer_and_streams(digits):
    x, xv = digits
    once = small_vae()
    h_once = tv.fit(once, x, epochs=5, batch_size=64, x_val=xv, progress=False)
    twice = small_vae()
    tv.fit(twice, x, epochs=3, batch_size=64, x_val=xv, progress=False)
    t_mid = twice.trainer.optimizer.t
    h_twice = tv.fit(twice, x, epochs=2, batch_size=64, x_val=xv, progress=False)
    assert t_mid == 3 * 5                                        # 300 examples / 64 -> 5 steps per epoch
    assert twice.trainer.optimizer.t == 5 * 5                    # Adam's step count carried on
    assert np.array_equal(once.flat, twice.flat)
    assert np.array_equal(once.trainer.optimizer.m, twice.trainer.optimizer.m)
    assert h_twice == h_once and h_twice["epoch"] == [1, 2, 3, 4, 5]


SETTINGS = dict(batch_size=32, lr=3e-3, optimizer="sgd", seed=7)


def test_fit_after_load_keeps_the_run_settings_it_is_not_given(digits, tmp_path):
    # a student reloads a run and calls fit(model, x): the saved seed, batch size and optimizer
    # go on, rather than fit's defaults (seed 0, 128, Adam), between epochs and mid-epoch
    x, _ = digits
    straight = small_vae()
    tv.fit(straight, x, epochs=3, progress=False, **SETTINGS)
    between = small_vae()
    tv.fit(between, x, epochs=2, progress=False, **SETTINGS)
    between.save(tmp_path / "b.npz")
    again = tv.load(tmp_path / "b.npz")
    tv.fit(again, x, epochs=1, progress=False)
    assert (again.trainer.seed, again.trainer.batch_size, again.trainer.optimizer.name) == (7, 32, "sgd")
    assert np.array_equal(again.flat, straight.flat)

    def stop(t):
        if (t.epoch, t.step) == (1, 4):
            raise KeyboardInterrupt
    mid = small_vae()
    with pytest.raises(KeyboardInterrupt):
        tv.fit(mid, x, epochs=3, progress=False, callback=stop, checkpoint=tmp_path / "m.npz", **SETTINGS)
    resumed = tv.load(tmp_path / "m.npz")
    assert (resumed.trainer.epoch, resumed.trainer.step) == (1, 4)
    tv.fit(resumed, x, epochs=2, progress=False)
    assert np.array_equal(resumed.flat, straight.flat)


def stopped_mid_epoch(x, **settings):
    """A small VAE whose fit was interrupted (Ctrl-C) after 2 minibatches of batch 32."""
    vae = small_vae()

    def stop(t):
        if t.step == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        tv.fit(vae, x, epochs=1, batch_size=32, progress=False, callback=stop, **settings)
    return vae


def test_mid_epoch_the_seed_and_binarization_cannot_change(digits):
    x, _ = digits
    vae = stopped_mid_epoch(x, seed=5)
    zero = stopped_mid_epoch(x)                                       # the default seed 0, given again
    tv.fit(zero, x, epochs=1, seed=0, binarize=None, progress=False)
    with pytest.raises(TinyVAEError, match=r"same seed \(seed=5\)"):
        tv.fit(vae, x, epochs=1, seed=0, progress=False)
    with pytest.raises(TinyVAEError, match="same binarization"):
        tv.fit(vae, x, epochs=1, binarize="dynamic", progress=False)
    tv.fit(vae, x, epochs=1, seed=5, binarize="none", progress=False)      # the same values are fine
    assert (vae.trainer.epoch, vae.trainer.step) == (1, 0)


def test_a_rejected_fit_call_leaves_the_run_as_it_was(digits):
    x, _ = digits
    straight = small_vae()
    tv.fit(straight, x, epochs=2, batch_size=64, progress=False)
    run = small_vae()
    tv.fit(run, x, epochs=1, batch_size=64, progress=False)
    for bad in (dict(x_train=x[:, :10], optimizer="sgd", seed=3),
                dict(x_train=x, optimizer="sgd", seed=3, binarize="static"),
                dict(x_train=x, optimizer="sgd", x_val=x[:, :10]),
                dict(x_train=x * 2, seed=3, binarize="dynamic")):
        with pytest.raises(TinyVAEError):
            tv.fit(run, epochs=1, progress=False, **bad)
        assert (run.trainer.optimizer.name, run.trainer.seed, run.trainer.binarize) == ("adam", 0, None)
    tv.fit(run, x, epochs=1, progress=False)
    assert np.array_equal(run.flat, straight.flat)


def test_the_random_streams_are_the_documented_ones():
    """noise [seed, 2], binarization [seed, 3], data order [seed, 1, epoch], validation
    [seed, 4, epoch] (train.py's table): separate, and each epoch's its own."""
    t = Trainer(small_vae(), seed=7)
    rng = np.random.default_rng
    assert np.array_equal(t.noise_rng.random(4), rng([7, 2]).random(4))
    assert np.array_equal(t.binarize_rng.random(4), rng([7, 3]).random(4))
    assert np.array_equal(t.permutation(10), rng([7, 1, 0]).permutation(10))
    assert np.array_equal(t.validation_rng(3).random(4), rng([7, 4, 3]).random(4))
    assert not np.array_equal(t.validation_rng(0).random(4), t.validation_rng(1).random(4))


def test_parameters_that_become_nan_stop_the_run_at_the_end_of_the_epoch(digits, tmp_path):
    x, _ = digits
    vae = small_vae()
    tv.fit(vae, x, epochs=1, batch_size=100, progress=False, checkpoint=tmp_path / "m.npz")
    saved = (tmp_path / "m.npz").read_bytes()
    real = vae.trainer.optimizer.step

    def poison_last_step(model):
        real(model)
        if vae.trainer.step == 2:                       # the epoch's last minibatch (3 of 100)
            model.flat[0] = np.nan
    vae.trainer.optimizer.step = poison_last_step
    with pytest.raises(tv.train.DivergedError, match="parameters became NaN"):
        tv.fit(vae, x, epochs=1, progress=False, checkpoint=tmp_path / "m.npz")
    assert (tmp_path / "m.npz").read_bytes() == saved


def test_resuming_mid_epoch_on_data_of_the_same_shape_but_other_values_is_refused(digits):
    x, _ = digits
    vae = small_vae()

    def stop(t):
        if t.step == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        tv.fit(vae, x, epochs=1, batch_size=64, progress=False, callback=stop)
    changed = x.copy()
    changed[-1, -1] = 0.123 if changed[-1, -1] != 0.123 else 0.456   # one late pixel: same shape
    with pytest.raises(TinyVAEError, match="other training data"):
        tv.fit(vae, changed, epochs=1, progress=False)


def test_ctrl_c_in_the_last_epoch_callback_is_not_swallowed(digits, tmp_path):
    x, _ = digits

    def ctrl_c_at_the_end(t):
        if t.epoch == 2:
            signal.raise_signal(signal.SIGINT)
    vae = small_vae()
    with pytest.raises(KeyboardInterrupt):
        tv.fit(vae, x, epochs=2, batch_size=100, progress=False, epoch_callback=ctrl_c_at_the_end,
               checkpoint=tmp_path / "m.npz")
    assert tv.load(tmp_path / "m.npz").trainer.epoch == 2


def test_a_failed_validation_leaves_the_trainer_able_to_go_on(tmp_path):
    """A DivergedError from the validation had already taken the epoch's count out of the
    running sums: the next fit failed with a KeyError, and a saved state loaded broken."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4))
    vae = tv.VAE(4, hidden_dims=(3,), likelihood="gaussian")
    with pytest.raises(tv.train.DivergedError, match="x_val"):
        tv.fit(vae, x, x_val=rng.normal(0, 1e18, (8, 4)), epochs=1, progress=False)
    assert {"n", "loss"} <= set(vae.trainer.sums) and vae.trainer.epoch == 0
    back = tv.load(vae.save(tmp_path / "m.npz"))
    history = tv.fit(back, x, x_val=x[:8], epochs=1, progress=False)
    assert history["epoch"] == [1] and np.isfinite(history["val_loss"][0])


def test_an_ignored_ctrl_c_stays_ignored(digits):
    """A background job in a shell script starts with SIGINT ignored; fit had taken it over."""
    x, _ = digits

    def ctrl_c(t):
        if t.n_steps == 1:
            signal.raise_signal(signal.SIGINT)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        history = tv.fit(small_vae(), x, epochs=1, batch_size=100, progress=False, callback=ctrl_c)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert history["epoch"] == [1]


def test_a_diverged_optimizer_state_is_not_saved_over_a_good_checkpoint(digits, tmp_path):
    x, _ = digits
    vae = small_vae()
    tv.fit(vae, x, epochs=1, batch_size=100, progress=False, checkpoint=tmp_path / "m.npz")
    good = (tmp_path / "m.npz").read_bytes()
    vae.trainer.optimizer.v[0] = np.inf                      # g^2 overflowed in the middle of an epoch
    with pytest.raises(TinyVAEError, match="optimizer's moments contain NaN or infinite values"):
        vae.save(tmp_path / "m.npz")
    assert (tmp_path / "m.npz").read_bytes() == good


def test_an_overflowed_adam_moment_stops_the_run(digits):
    """In float32, g^2 above 3.4e38 makes v infinite and freezes its parameter for good, while
    the loss stays finite: training had gone on, the loss stuck, without a word."""
    from tinyvae import kernels
    theta, m, v = np.ones(2, np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32)
    kernels.adam(theta, np.array([1e22, 1.0], np.float32), m, v, 1e-3, 0.9, 0.999, 1e-8, 1)
    assert np.isinf(v[0])                                  # the overflow itself
    before = theta.copy()
    kernels.adam(theta, np.array([1.0, 1.0], np.float32), m, v, 1e-3, 0.9, 0.999, 1e-8, 2)
    assert theta[0] == before[0] and theta[1] != before[1]           # frozen for good: m / sqrt(inf)
    x, _ = digits

    def overflow(t):                                       # as such a gradient would leave it
        if t.step == 2:
            t.optimizer.v[0] = np.inf
    with pytest.raises(tv.train.DivergedError, match="moments overflowed"):
        tv.fit(small_vae(), x, epochs=2, batch_size=100, progress=False, callback=overflow)


def test_an_untrained_model_whose_loss_is_not_finite_is_not_blamed_on_the_data():
    vae = small_vae(likelihood="gaussian")
    vae.params["dec.W0"][...] = 1e30
    with pytest.raises(TinyVAEError, match="with data of ordinary size .* the model itself gives it"):
        tv.fit(vae, np.random.default_rng(0).uniform(size=(20, 64)), epochs=1, progress=False)


def test_callbacks_and_the_checkpoint_path_are_checked_before_any_step(digits, tmp_path):
    """A callback that is not a function, or a checkpoint path that cannot be written, had
    failed after a step or a whole epoch, leaving the run changed (mid-epoch after callback=3)."""
    x, _ = digits
    (tmp_path / "notes.txt").write_text("mine")
    vae = small_vae()
    before = vae.flat.copy()
    for bad, match in ((dict(callback=3), "callback must be a function"),
                       (dict(epoch_callback="x"), "epoch_callback must be a function"),
                       (dict(checkpoint=3), "checkpoint path must be a string"),
                       (dict(checkpoint=tmp_path / "notes.txt" / "model.npz"), "notes.txt is a file")):
        with pytest.raises(TinyVAEError, match=match):
            tv.fit(vae, x, epochs=1, batch_size=64, progress=False, **bad)
        assert np.array_equal(vae.flat, before) and getattr(vae, "trainer", None) is None
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_learning_rate_schedule_in_numpy_floats_still_saves(digits, tmp_path):
    """An epoch callback that sets lr to a np.float32 (a step decay) made every save fail: the
    trainer's settings went into JSON as they were."""
    x, _ = digits
    vae = small_vae()

    def halve(t):
        t.optimizer.lr = t.optimizer.lr * np.float32(0.5)

    tv.fit(vae, x, epochs=2, batch_size=64, progress=False, epoch_callback=halve,
           checkpoint=tmp_path / "run" / "model.npz")
    back = tv.load(tmp_path / "run")
    assert back.trainer.epoch == 2 and back.trainer.optimizer.lr == pytest.approx(2.5e-4)


def test_data_too_large_for_the_dtype_is_not_blamed_on_the_learning_rate():
    """Finite values beyond float32's range, and a first minibatch that overflows before any
    step, are the data's fault: the messages say so (they had said 'NaN or infinite values'
    and 'lower the learning rate')."""
    rng = np.random.default_rng(0)
    gaussian = tv.VAE(4, hidden_dims=(3,), likelihood="gaussian")
    with pytest.raises(TinyVAEError, match="values up to 1e\\+39, beyond the range of float32"):
        tv.fit(gaussian, np.full((5, 4), 1e39), epochs=1, progress=False)
    with pytest.raises(TinyVAEError, match="beyond the range of float32") as e:
        gaussian.encode(np.full((2, 4), -1e39))
    assert "dtype='float64'" in str(e.value)
    with pytest.raises(TinyVAEError, match="before any step") as e:
        tv.fit(gaussian, rng.normal(0, 1e18, (64, 4)), epochs=1, lr=1e-12, progress=False)
    assert "far from unit scale" in str(e.value)
    pixels = np.round(tv.load_dataset("digits").x_train * 255)     # raw 0..255 pixels, the usual slip
    with pytest.raises(TinyVAEError, match=r"values up to 255\) are far from unit scale"):
        tv.fit(tv.VAE(64, hidden_dims=(128,), latent_dim=2, likelihood="gaussian"), pixels, epochs=3,
               progress=False)
    assert not isinstance(e.value, tv.train.DivergedError) and "learning rate" not in str(e.value)
    assert gaussian.trainer.n_steps == 0
    with pytest.raises(tv.train.DivergedError, match="check that x_val is on the scale of x_train"):
        tv.fit(tv.VAE(4, hidden_dims=(3,), likelihood="gaussian"), rng.normal(size=(64, 4)),
               x_val=rng.normal(0, 1e18, (8, 4)), epochs=1, progress=False)


def test_a_pair_or_a_ragged_list_is_not_taken_for_data(digits):
    x, _ = digits
    vae = small_vae()
    for bad in ((x, np.arange(len(x))), [[0.5] * 64, [0.5] * 63]):
        with pytest.raises(TinyVAEError, match="not one rectangular array"):
            tv.fit(vae, bad, epochs=1, progress=False)
        with pytest.raises(TinyVAEError, match="not one rectangular array"):
            vae.encode(bad)


def test_fit_takes_an_optimizer_object_with_its_own_settings(digits, tmp_path):
    x, _ = digits
    vae = small_vae()
    sgd = tv.SGD(lr=0.05, momentum=0.5)
    tv.fit(vae, x, epochs=1, optimizer=sgd, progress=False)
    assert vae.trainer.optimizer is sgd and sgd.t == 3          # 300 examples in batches of 128
    vae.save(tmp_path / "s.npz")
    assert tv.load(tmp_path / "s.npz").trainer.optimizer.momentum == 0.5
    by_hand = small_vae()
    tv.fit(by_hand, x, epochs=1, optimizer="sgd", lr=0.05, progress=False)     # momentum 0.9
    assert not np.array_equal(by_hand.flat, vae.flat)
    with pytest.raises(TinyVAEError, match="brings its own learning rate"):
        tv.fit(small_vae(), x, epochs=1, optimizer=tv.Adam(beta1=0.5), lr=1e-2, progress=False)


def test_the_documented_sgd_example_trains_the_readme_model():
    """fit's docstring and the unknown-optimizer message suggest an SGD object; on the README's
    model it must train (lr=0.1 had diverged within two epochs for every seed tried)."""
    import re

    from tinyvae.optim import make_optimizer
    with pytest.raises(TinyVAEError) as error:
        make_optimizer("adamw", 1e-3)
    pattern = r"tv\.SGD\(lr=[\d.]+, momentum=[\d.]+\)"
    suggested = set(re.findall(pattern, tv.fit.__doc__)) | set(re.findall(pattern, str(error.value)))
    assert len(suggested) == 1, suggested
    ds = tv.load_dataset("digits")
    for seed in (0, 2):
        vae = tv.VAE(input_dim=64, hidden_dims=(128,), latent_dim=2, seed=seed)
        sgd = eval(next(iter(suggested)), {"tv": tv})
        history = tv.fit(vae, ds.x_train, epochs=4, optimizer=sgd, seed=seed, progress=False)
        assert np.isfinite(history["loss"]).all() and history["loss"][-1] < history["loss"][0] - 5


def test_an_optimizer_object_that_stepped_for_another_run_is_refused(digits):
    x, _ = digits
    adam = tv.Adam()
    first = small_vae()
    tv.fit(first, x, epochs=1, optimizer=adam, progress=False)
    second = small_ae()
    with pytest.raises(TinyVAEError, match="taken 3 steps for another run"):
        tv.fit(second, x, epochs=1, optimizer=adam, progress=False)
    assert getattr(second, "trainer", None) is None
    tv.fit(first, x, epochs=1, optimizer=adam, progress=False)       # the run's own object goes on
    assert first.trainer.optimizer is adam and adam.t == 6


def test_kl_annealing_in_the_epoch_callback_is_what_the_checkpoint_holds(digits, tmp_path):
    x, _ = digits
    vae = small_vae()
    tv.fit(vae, x, epochs=2, checkpoint=tmp_path / "a.npz", progress=False,
           epoch_callback=lambda t: setattr(t.model, "beta", 0.25 * t.epoch))
    assert vae.beta == tv.load(tmp_path / "a.npz").beta == 0.5


def test_dynamic_binarization_needs_probabilities(digits):
    x, _ = digits
    gaussian = tv.VAE(input_dim=64, hidden_dims=(8,), latent_dim=2, likelihood="gaussian")
    with pytest.raises(TinyVAEError, match=r"binarize='dynamic' .* must lie in \[0, 1\]"):
        tv.fit(gaussian, x * 2, epochs=1, binarize="dynamic", progress=False)
    tv.fit(gaussian, x * 2, epochs=1, progress=False)                 # gray values of any range are fine


def test_fit_saves_the_checkpoint_after_the_last_epoch(digits, tmp_path):
    x, _ = digits
    vae = small_vae()
    saves = []
    tv.fit(vae, x, epochs=5, checkpoint=tmp_path / "c.npz", checkpoint_every=2, progress=False,
           epoch_callback=lambda t: saves.append(tv.load(tmp_path / "c.npz").trainer.epoch
                                                 if (tmp_path / "c.npz").exists() else None))
    assert saves == [None, None, 2, 2, 4]               # every 2 epochs, after the callback ...
    assert tv.load(tmp_path / "c.npz").trainer.epoch == 5      # ... and the end of the run


def test_a_fresh_optimizer_does_not_match_a_continued_one(digits):
    """The continuation test above can fail: restarting Adam's moments changes the result."""
    x, _ = digits
    cont = small_vae()
    tv.fit(cont, x, epochs=2, batch_size=64, progress=False)
    tv.fit(cont, x, epochs=1, batch_size=64, progress=False)
    restarted = small_vae()
    tv.fit(restarted, x, epochs=2, batch_size=64, progress=False)
    fresh = tv.Adam(lr=1e-3)                     # the same optimizer and lr, its moments at zero
    tv.fit(restarted, x, epochs=1, batch_size=64, optimizer=fresh, progress=False)
    assert restarted.trainer.optimizer is fresh and fresh.t == cont.trainer.optimizer.t - 2 * fresh.t
    assert not np.array_equal(cont.flat, restarted.flat)


def test_numpy_and_numba_backends_train_alike(digits, backend):
    x, _ = digits
    flats = []
    for name in ("numpy", "numba"):
        backend(name)
        vae = small_vae(dtype="float64")
        tv.fit(vae, x, epochs=2, batch_size=64, progress=False)
        flats.append(vae.flat.copy())
    np.testing.assert_allclose(flats[0], flats[1], rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the history

def test_history_keys_lengths_and_terms(digits):
    x, xv = digits
    vae = small_vae(beta=0.5)
    h = tv.fit(vae, x, epochs=4, batch_size=100, x_val=xv, progress=False)
    assert set(h) == {"epoch", "loss", "rec", "kl", "val_loss", "val_rec", "val_kl"}
    assert all(len(v) == 4 for v in h.values())
    for i in range(4):                       # the loss is rec + beta KL, train and validation
        assert h["loss"][i] == pytest.approx(h["rec"][i] + 0.5 * h["kl"][i], rel=1e-9)
        assert h["val_loss"][i] == pytest.approx(h["val_rec"][i] + 0.5 * h["val_kl"][i], rel=1e-9)
    assert h["loss"][-1] < h["loss"][0] - 3                       # it learns
    assert min(h["kl"]) > 0

    ae = small_ae(sparse_l1=0.01)
    h = tv.fit(ae, x, epochs=2, batch_size=100, progress=False)
    assert set(h) == {"epoch", "loss", "rec", "penalty"} and len(h["loss"]) == 2


def test_epoch_loss_weights_the_smaller_last_batch(digits):
    """300 examples in batches of 128: 128 + 128 + 44; the epoch mean weights by batch size."""
    x, _ = digits
    vae = small_vae()
    seen, step = [], vae.training_loss_and_grads

    def recorded(xb, rng):                      # each minibatch's own mean loss and size
        loss, grads, terms = step(xb, rng)
        seen.append((loss, len(xb)))
        return loss, grads, terms
    vae.training_loss_and_grads = recorded
    h = tv.fit(vae, x, epochs=1, batch_size=128, progress=False)
    losses, sizes = np.array(seen).T
    assert list(sizes) == [128, 128, 44]
    weighted = np.sum(losses * sizes) / 300
    assert h["loss"][0] == pytest.approx(weighted, rel=1e-9)
    # the check can fail: the mean of the batch means, or every batch counted as 128, differ
    assert abs(np.mean(losses) - weighted) > 1e-6 * weighted
    assert abs(np.sum(losses * 128) / 300 - weighted) > 1e-6 * weighted


def test_progress_bar_shows_the_running_loss(digits, capsys):
    x, _ = digits
    tv.fit(small_vae(), x, epochs=1, batch_size=100, progress=False)
    assert capsys.readouterr().err == ""
    from tqdm import tqdm
    seen = []

    class Spy(tqdm):                          # tqdm off a terminal is disabled; force it on
        def __init__(self, *a, **k):
            k["disable"] = False
            super().__init__(*a, **k)
            seen.append(self)
    import tqdm as tqdm_module
    old = tqdm_module.tqdm
    tqdm_module.tqdm = Spy
    try:
        vae = small_vae()
        tv.fit(vae, x, epochs=2, batch_size=100, progress=True)
        tv.fit(vae, x, epochs=1, batch_size=100, progress=True)          # a third epoch: continued
    finally:
        tqdm_module.tqdm = old
    assert seen[0].total == 6 and seen[0].n == 6 and seen[0].desc.startswith("epoch 2/2 loss ")
    # the whole run's minibatches, the first six already done; the epoch and loss come first,
    # before the bar, where a narrow terminal does not cut them off
    assert (seen[1].total, seen[1].initial, seen[1].n) == (9, 6, 9) and seen[1].desc.startswith("epoch 3/3 loss ")


def test_the_progress_bar_shows_in_a_notebook(digits, capsys, monkeypatch):
    """A notebook's stderr is no terminal, so tqdm turned the bar off: a minute of training in
    lesson 8 showed nothing at all. In a Jupyter kernel it is on; in a plain script off a
    terminal it stays off."""
    import types
    x, _ = digits
    kernel = type("ZMQInteractiveShell", (), {})()
    ipython = types.ModuleType("IPython")
    ipython.version_info = (9, 0)
    ipython.get_ipython = lambda: None
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    tv.fit(small_vae(), x, epochs=1, batch_size=100, progress=True)
    assert capsys.readouterr().err == ""                       # a script off a terminal: quiet
    ipython.get_ipython = lambda: kernel                       # inside a Jupyter kernel
    tv.fit(small_vae(), x, epochs=1, batch_size=100, progress=True)
    assert "batch" in capsys.readouterr().err
    tv.fit(small_vae(), x, epochs=1, batch_size=100, progress=False)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------------------
# Ctrl-C in the middle of an epoch, and the exact resume

def test_sigint_mid_epoch_saves_a_state_that_resumes_to_the_same_bits(digits, tmp_path):
    x, xv = digits
    ref = small_vae()
    h_ref = tv.fit(ref, x, epochs=3, batch_size=32, x_val=xv, progress=False)

    path = tmp_path / "model.npz"

    def interrupt(t):                          # a real SIGINT, in epoch 2 after minibatch 4
        if t.epoch == 1 and t.step == 4:
            signal.raise_signal(signal.SIGINT)

    vae = small_vae()
    with pytest.raises(KeyboardInterrupt):
        tv.fit(vae, x, epochs=3, batch_size=32, x_val=xv, progress=False, callback=interrupt,
               checkpoint=path)
    assert (vae.trainer.epoch, vae.trainer.step) == (1, 4)       # stopped between two minibatches
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    loaded = tv.load(path)
    assert (loaded.trainer.epoch, loaded.trainer.step) == (1, 4)
    h = tv.fit(loaded, x, epochs=2, batch_size=32, x_val=xv, progress=False)   # finish 2, then 3
    assert np.array_equal(loaded.flat, ref.flat)
    assert h == h_ref


@pytest.mark.parametrize("k", [7, 10])          # mid-epoch; the last minibatch of epoch 1
def test_sigint_inside_the_optimizer_step_is_deferred_to_the_end_of_the_minibatch(digits, tmp_path, k,
                                                                                   default_sigint):
    """The test above sends SIGINT from a callback, a point that is safe anyway. Here it arrives
    in the middle of minibatch k: inside the optimizer's step, before the update. The deferral
    must let that minibatch finish -- update applied and counted -- and only then raise
    KeyboardInterrupt; the checkpoint written on the way out resumes to the bits of a run that
    was never interrupted. Without the deferral the step is cut short and the count is k - 1."""
    x, _ = digits                                                   # 300 / 32: 10 minibatches an epoch
    ref = small_vae()
    after_k = {}

    def remember(t):
        if t.n_steps == k:
            after_k.update(flat=t.model.flat.copy(), m=t.optimizer.m.copy(), v=t.optimizer.v.copy())
    h_ref = tv.fit(ref, x, epochs=2, batch_size=32, progress=False, callback=remember)

    vae = small_vae()
    vae.trainer = trainer = Trainer(vae, batch_size=32)             # fit continues this trainer
    real_step, calls = trainer.optimizer.step, []

    def step_with_a_sigint(model):
        calls.append(1)
        if len(calls) == k:
            signal.raise_signal(signal.SIGINT)                      # before the real update
        real_step(model)
    trainer.optimizer.step = step_with_a_sigint

    path = tmp_path / "model.npz"
    with pytest.raises(KeyboardInterrupt):
        tv.fit(vae, x, epochs=2, batch_size=32, progress=False, checkpoint=path)
    assert vae.trainer is trainer and len(calls) == k               # no minibatch after the k-th
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # minibatch k was applied and counted in full, and the trainer is at a boundary
    assert trainer.n_steps == trainer.optimizer.t == k
    assert (trainer.epoch, trainer.step) == divmod(k, 10)
    assert trainer.sums.get("n", 0) == 32 * trainer.step
    assert len(trainer.history.get("loss", [])) == trainer.epoch
    assert np.array_equal(vae.flat, after_k["flat"])
    assert np.array_equal(trainer.optimizer.m, after_k["m"]) and np.array_equal(trainer.optimizer.v, after_k["v"])

    loaded = tv.load(path)                                          # saved by fit on the way out
    assert (loaded.trainer.epoch, loaded.trainer.step, loaded.trainer.n_steps) == (*divmod(k, 10), k)
    assert np.array_equal(loaded.flat, after_k["flat"])
    h = tv.fit(loaded, x, epochs=2 - loaded.trainer.epoch, batch_size=32, progress=False)
    assert loaded.trainer.n_steps == 20
    assert np.array_equal(loaded.flat, ref.flat)
    assert h == h_ref


def test_resuming_mid_epoch_on_other_data_is_refused(digits, tmp_path):
    x, _ = digits
    vae = stopped_mid_epoch(x)
    with pytest.raises(TinyVAEError, match="same data"):
        tv.fit(vae, x[:-1], epochs=1, batch_size=32, progress=False)
    with pytest.raises(TinyVAEError, match="batch size"):
        tv.fit(vae, x, epochs=1, batch_size=16, progress=False)


# ---------------------------------------------------------------------------------------------
# a loss that becomes NaN

def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(digits, tmp_path, monkeypatch):
    x, _ = digits
    vae = small_vae()
    path = tmp_path / "model.npz"
    snapshots = {}

    def remember(t):
        snapshots[(t.epoch, t.step)] = t.model.flat.copy()

    real = vae.training_loss_and_grads
    calls = []

    def poisoned(xb, rng):                     # the 13th minibatch (epoch 3, minibatch 3) is NaN
        calls.append(1)
        loss, grads, terms = real(xb, rng)
        return (float("nan") if len(calls) == 13 else loss), grads, terms

    monkeypatch.setattr(vae, "training_loss_and_grads", poisoned)
    with pytest.raises(TinyVAEError) as err:
        tv.fit(vae, x, epochs=5, batch_size=60, progress=False, callback=remember,
               epoch_callback=remember, checkpoint=path)
    msg = str(err.value)
    assert "epoch 3" in msg and "minibatch 3" in msg and "learning rate" in msg
    assert np.array_equal(vae.flat, snapshots[(2, 2)])           # the bad step was not applied
    saved = tv.load(path)
    assert saved.trainer.epoch == 2 and saved.trainer.step == 0  # the end of epoch 2 is intact
    assert np.array_equal(saved.flat, snapshots[(2, 0)])


def test_an_absurd_learning_rate_is_caught(digits, tmp_path):
    x, _ = digits
    path = tmp_path / "m.npz"
    vae = small_vae()
    tv.fit(vae, x, epochs=1, batch_size=30, progress=False, checkpoint=path)
    good, good_bytes = vae.flat.copy(), path.read_bytes()
    with _no_warnings():
        with pytest.raises(TinyVAEError, match="lower the learning rate"):
            tv.fit(vae, x, epochs=20, batch_size=30, optimizer="sgd", lr=1e4, progress=False,
                   checkpoint=path)
    assert path.read_bytes() == good_bytes
    assert np.array_equal(tv.load(path).flat, good)


class _no_warnings:
    """The blow-up is one clear error, without NumPy's overflow warnings before it."""
    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings(record=True)
        self.caught = self._w.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._w.__exit__(*exc)
        assert not [w for w in self.caught if issubclass(w.category, RuntimeWarning)], self.caught
        return False


# ---------------------------------------------------------------------------------------------
# input checks, once per array

@pytest.mark.parametrize("bad, match", [
    (np.full((5, 64), np.nan, dtype=np.float32), "NaN or infinite"),
    (np.ones(64), "2-D"),
    (np.ones((5, 63)), "input_dim=64"),
    (np.full((5, 64), 2.0), r"\[0, 1\]"),
    (np.array([[object()] * 64] * 2), "dtype object"),
    (np.ones((0, 64)), "no examples"),
])
def test_training_data_is_checked_with_clear_messages(bad, match):
    with pytest.raises(TinyVAEError, match=match):
        tv.fit(small_vae(), bad, epochs=1, progress=False)


def test_fit_on_something_that_is_not_a_model_is_a_clear_error(digits):
    x, _ = digits
    for not_a_model in ("not a model", None, np.zeros(3)):
        with pytest.raises(TinyVAEError, match="build one first"):
            tv.fit(not_a_model, x, epochs=1, progress=False)
        with pytest.raises(TinyVAEError, match="build one first"):
            Trainer(not_a_model)


def test_gaussian_and_mse_models_accept_data_outside_the_unit_interval():
    x = np.random.default_rng(0).normal(size=(40, 64)) * 3
    assert check_data(small_vae(likelihood="gaussian"), x).dtype == np.float32
    tv.fit(small_ae(loss="mse"), x, epochs=1, progress=False)
    with pytest.raises(TinyVAEError, match="loss='mse'"):
        tv.fit(small_ae(loss="bce"), x, epochs=1, progress=False)


def test_bad_hyperparameters_are_errors(digits):
    x, _ = digits
    for kw in (dict(epochs=0), dict(batch_size=-1), dict(lr=-1.0), dict(lr=float("nan")),
               dict(optimizer="rmsprop"), dict(binarize="sometimes"), dict(seed=-3)):
        with pytest.raises(TinyVAEError):
            tv.fit(small_vae(), x, progress=False, **kw)


def test_dynamic_binarization_trains_on_fresh_bits(digits):
    x, _ = digits
    vae = small_vae()
    seen = []
    real = vae.training_loss_and_grads

    def spy(xb, rng):
        seen.append(xb.copy())
        return real(xb, rng)
    vae.training_loss_and_grads = spy
    tv.fit(vae, x, epochs=2, batch_size=300, binarize="dynamic", progress=False)
    assert all(set(np.unique(b)) <= {0.0, 1.0} for b in seen)
    assert not np.array_equal(np.sort(seen[0], axis=0), np.sort(seen[1], axis=0))   # a new draw
    # each bit is a draw with mean equal to the gray value
    assert abs(float(np.mean(seen[0])) - float(np.mean(x))) < 0.01


def test_the_hot_loop_reuses_its_minibatch_buffers(digits):
    x, _ = digits
    vae = small_vae()
    addresses = set()
    real = vae.training_loss_and_grads

    def spy(xb, rng):
        addresses.add(xb.__array_interface__["data"][0])
        return real(xb, rng)
    vae.training_loss_and_grads = spy
    tv.fit(vae, x, epochs=4, batch_size=128, progress=False)       # 3 minibatches per epoch, 12 in all
    assert len(addresses) <= 2                                      # the full batch and the last one


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_a_training_step_allocates_no_arrays(digits, likelihood):
    """The hot loop of Trainer.run, step by step: gather, loss and gradients, Adam. After two
    warm-up steps (which fill the workspace and the optimizer's moments) no array is
    allocated: every (batch, width) temporary of the numba path lives in a reused buffer."""
    import tracemalloc
    x, _ = digits
    x = x.astype(np.float32)
    vae = tv.VAE(input_dim=64, hidden_dims=(96,), latent_dim=8, likelihood=likelihood, dtype="float32")
    trainer = Trainer(vae, batch_size=128)
    xb = np.empty((128, 64), np.float32)             # the smallest (128, width) array: 128 x 8 x 4 = 4 KB
    rng = np.random.default_rng(0)
    orders = [np.arange(i, i + 128) % x.shape[0] for i in range(12)]

    def step(i):
        np.take(x, orders[i], axis=0, out=xb, mode="clip")       # as Trainer.run gathers
        vae.training_loss_and_grads(xb, rng)
        trainer.optimizer.step(vae)

    previous = tv.set_backend("numba")
    grown = []
    try:
        step(0), step(1)
        tracemalloc.start()
        try:
            # tracemalloc sees every thread: the least of three windows of ten steps each
            # leaves out what another thread (a progress bar's monitor, say) allocated meanwhile
            for window in range(3):
                start, _ = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                for i in range(2, 12):
                    step(i)
                grown.append(tracemalloc.get_traced_memory()[1] - start)
        finally:
            tracemalloc.stop()
    finally:
        tv.set_backend(previous)
    # seen: ~1.1 KB of NumPy's reduction buffer (the row sums of the loss) plus Python floats
    assert min(grown) < 3000, grown


def test_trainer_state_round_trips_through_json(digits):
    import json
    x, _ = digits
    vae = small_ae(noise_std=0.2)
    t = Trainer(vae, batch_size=50, lr=3e-3, optimizer="sgd", seed=5)

    def stop(tr):
        if tr.epoch == 1 and tr.step == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        t.run(x, 3, progress=False, callback=stop)
    meta, arrays = t.state_dict()
    back = Trainer.from_state(vae, json.loads(json.dumps(meta)), arrays)
    assert back.noise_rng.bit_generator.state == t.noise_rng.bit_generator.state
    assert (back.epoch, back.step, back.sums, back.history) == (t.epoch, t.step, t.sums, t.history)
    assert back.optimizer.name == "sgd" and back.optimizer.lr == 3e-3 and back.optimizer.t == t.optimizer.t
    assert np.array_equal(back.optimizer.velocity, t.optimizer.velocity)


def test_history_lists_stay_aligned_when_x_val_comes_and_goes(digits):
    """x_val given only on a later fit (or dropped again): every list has one entry per epoch,
    NaN where there was no validation loss, so history.csv and the loss plot line up."""
    x, _ = digits
    vae = small_vae()
    tv.fit(vae, x, epochs=2, progress=False)
    tv.fit(vae, x, epochs=1, x_val=x[:100], progress=False)
    h = tv.fit(vae, x, epochs=1, progress=False)
    assert {len(v) for v in h.values()} == {4}
    assert h["epoch"] == [1, 2, 3, 4]
    val = np.array(h["val_loss"])
    assert np.isnan(val[[0, 1, 3]]).all() and np.isfinite(val[2])



# ---------------------------------------------------------------------------------------------
# data order, and what fit does with a new seed or a new learning rate on a continued run

def test_every_epoch_visits_each_example_once_in_a_fresh_order():
    """Minibatch SGD: each epoch is a permutation of the training set, shuffled anew."""
    x = np.random.default_rng(0).uniform(size=(30, 64)).astype(np.float32)   # 30 distinct rows
    index = {row.tobytes(): i for i, row in enumerate(x)}
    vae = small_vae()
    seen = []
    real = vae.training_loss_and_grads

    def spy(xb, rng):
        seen.extend(index[row.tobytes()] for row in xb)
        return real(xb, rng)
    vae.training_loss_and_grads = spy
    tv.fit(vae, x, epochs=3, batch_size=8, progress=False)                  # 8 + 8 + 8 + 6 per epoch
    orders = [seen[i:i + 30] for i in range(0, 90, 30)]
    assert len(seen) == 90
    for order in orders:
        assert sorted(order) == list(range(30))                              # each example once
    assert orders[0] != list(range(30))                                      # shuffled
    assert orders[0] != orders[1] and orders[1] != orders[2]                 # anew each epoch


def test_a_new_seed_on_a_continued_run_restarts_the_streams(digits):
    x, _ = digits
    same, reseeded = small_vae(), small_vae()
    for vae, second_seed in ((same, 0), (reseeded, 5)):
        tv.fit(vae, x, epochs=1, batch_size=64, seed=0, progress=False)
        tv.fit(vae, x, epochs=1, batch_size=64, seed=second_seed, progress=False)
    assert reseeded.trainer.seed == 5
    assert not np.array_equal(same.flat, reseeded.flat)


def test_a_new_learning_rate_on_a_continued_run_is_used_and_keeps_the_moments():
    """One full-batch Adam step after a change of lr, against Kingma & Ba's alg. 1 written out
    here: m, v and t carry on from the first fit, the step uses the new lr."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(20, 8))
    ae = tv.Autoencoder(8, hidden_dims=(), code_dim=3, activation="tanh", dtype="float64", seed=0)
    tv.fit(ae, x, epochs=2, batch_size=20, lr=1e-3, progress=False)        # two Adam steps
    opt = ae.trainer.optimizer
    theta, m, v, t = ae.flat.copy(), opt.m.copy(), opt.v.copy(), opt.t
    assert t == 2
    g = ae.loss_and_grads(x)[1]
    g = np.concatenate([g[k].ravel() for k in ae.params])                  # the flat layout
    tv.fit(ae, x, epochs=1, batch_size=20, lr=1e-2, progress=False)        # one step, new lr
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 1e-2
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    expected = theta - lr * (m / (1 - b1**3)) / (np.sqrt(v / (1 - b2**3)) + eps)
    assert ae.trainer.optimizer.lr == 1e-2 and ae.trainer.optimizer.t == 3
    np.testing.assert_allclose(ae.flat, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_sgd_with_momentum_against_the_update_written_out(backend, name):
    """Three full-batch SGD steps against Goodfellow et al. alg. 8.2 written out here, with
    the gradient at each step taken from a twin model at the hand-computed parameters:
    v <- momentum v - lr g;  theta <- theta + v, from v = 0. From the second step on, the
    result depends on the momentum."""
    backend(name)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(20, 8))
    kw = dict(hidden_dims=(), code_dim=3, activation="tanh", dtype="float64", seed=0)
    ae, twin = tv.Autoencoder(8, **kw), tv.Autoencoder(8, **kw)
    lr, momentum = 0.1, 0.9
    theta, v = twin.flat.copy(), np.zeros_like(twin.flat)
    expected = []
    for _ in range(3):
        twin.flat[...] = theta
        g = twin.loss_and_grads(x)[1]
        g = np.concatenate([g[k].ravel() for k in twin.params])            # the flat layout
        v = momentum * v - lr * g
        theta = theta + v
        expected.append((theta, v))
    for step in range(3):                                                   # one step per epoch
        tv.fit(ae, x, epochs=1, batch_size=20, optimizer="sgd", lr=lr, progress=False)
        opt = ae.trainer.optimizer
        assert opt.name == "sgd" and opt.momentum == momentum and opt.t == step + 1
        np.testing.assert_allclose(ae.flat, expected[step][0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(opt.velocity, expected[step][1], rtol=0, atol=1e-12)
    assert np.max(np.abs(momentum * expected[0][1])) > 1e-2                 # momentum's share, far above atol


# --- the mistakes a student makes in a notebook, each one clear error -------------------------

def test_arguments_in_the_wrong_order_or_of_the_wrong_kind_say_what_to_pass(digits):
    from tinyvae import plots
    x, _ = digits
    vae = tv.VAE(64, hidden_dims=(8,), latent_dim=2)
    cases = [
        (lambda: plots.plot_reconstructions(x, vae, (8, 8)), r"takes the model first, plot_reconstructions\(model"),
        (lambda: plots.plot_latent_space(x, vae), "takes the model first"),
        (lambda: plots.plot_samples((8, 8), vae), "plot_samples takes the model first.*got tuple"),
        (lambda: plots.plot_history(vae), r"the dict fit returns.*got VAE"),
        (lambda: tv.check_model(x, vae, None), r"check_model takes the model first"),
        (lambda: tv.fit(x, vae), r"take a tinyvae model .* first, fit\(model, x_train\).*latent_dim=20"),
        (lambda: tv.VAE(64, 2), r"got 2; for one hidden layer of 2 write \(2,\).*latent_dim="),
        (lambda: tv.MLP(64, 32), r"MLP\(\(64, 32, 2\)\), got 64$"),
        (lambda: tv.fit(vae, tv.load_dataset("digits")), r"is a Dataset; pass its arrays"),
        (lambda: tv.fit(vae, x, x_val=np.zeros(30)), r"x_val must be a 2-D .* 1-D shape \(30,\): labels\?"),
    ]
    for call, says in cases:
        with pytest.raises(tv.TinyVAEError, match=says):
            call()
    tv.fit(vae, x[:256], epochs=1, progress=False)
    assert repr(vae.trainer).startswith("<Trainer: epoch 1 done, 2 steps, adam lr=0.001, batch_size=128")


def test_a_state_dict_is_a_snapshot_that_training_does_not_change():
    """Trainer.state_dict() had returned the optimizer's live moments and the live running sums:
    a snapshot kept in a callback drifted with the run, and resuming from it did not resume."""
    x = np.random.default_rng(0).uniform(size=(96, 12)).astype(np.float32)
    for optimizer in ("adam", "sgd"):
        vae = tv.VAE(12, hidden_dims=(8,), latent_dim=2)
        kept = {}

        def remember(t):
            if t.n_steps == 2:
                kept["snapshot"] = t.state_dict()
                kept["arrays"] = {k: np.array(v, copy=True) for k, v in t.optimizer.__dict__.items()
                                  if isinstance(v, np.ndarray)}
                kept["sums"] = dict(t.sums)
        tv.fit(vae, x, epochs=1, batch_size=16, optimizer=optimizer, progress=False, callback=remember)
        meta, arrays = kept["snapshot"]
        assert kept["arrays"] and meta["sums"] == kept["sums"] and meta["step"] == 2
        for name, then in kept["arrays"].items():
            assert np.array_equal(arrays[name], then), (optimizer, name)      # as it was at step 2
            assert not np.array_equal(arrays[name], getattr(vae.trainer.optimizer, name)), (optimizer, name)


class _HeldArray:
    """An input that holds the thread converting it until ``release`` is set, so that another
    thread can be made to call in while the first is inside the model."""

    def __init__(self, x):
        self.x, self.inside, self.release = x, threading.Event(), threading.Event()

    def __array__(self, dtype=None, copy=None):
        self.inside.set()
        assert self.release.wait(10)
        return self.x if dtype is None else self.x.astype(dtype)


@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_two_threads_computing_one_models_gradients_are_refused_not_mixed(kind):
    """Threads sharing one model's loss_and_grads had got wrong losses (17 of 80 in a trial),
    without an error: the model has one set of work buffers and gradients. The second thread is
    now refused; other threads' results are the serial ones, and other models are independent."""
    r = np.random.default_rng(0)
    x = r.uniform(size=(32, 10)).astype(np.float32)
    model = (tv.VAE(10, hidden_dims=(8,), latent_dim=2) if kind == "vae"
             else tv.Autoencoder(10, hidden_dims=(8,), code_dim=2))
    extra = (r.standard_normal((32, 2)).astype(np.float32),) if kind == "vae" else ()
    serial, serial_grads = model.loss_and_grads(x, *extra)[0], model.grad_flat.copy()
    held = _HeldArray(x)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(lambda: model.loss_and_grads(held, *extra)[0])
        assert held.inside.wait(10)                       # the first thread is inside the model
        for call in (lambda: model.loss_and_grads(x, *extra),
                     lambda: model.training_loss_and_grads(x, np.random.default_rng(1))):
            with pytest.raises(TinyVAEError, match="training or computing gradients in another thread.*its own model"):
                call()
        twin = copy.deepcopy(model)                       # another model is free meanwhile
        assert twin.loss_and_grads(x, *extra)[0] == serial
        held.release.set()
        assert first.result(10) == serial
    assert np.array_equal(model.grad_flat, serial_grads)
    assert model.loss_and_grads(x, *extra)[0] == serial   # and the model is free again


def test_a_second_training_run_of_one_model_is_refused_while_the_first_runs():
    """The guard had covered only the gradients: a second thread's fit, or its gradients
    between the first's gradients and its Adam step, went through (1 step of 1952 took the
    other thread's gradient in a trial). The whole run now holds the model; the same thread,
    as a callback, may still compute gradients."""
    x = np.random.default_rng(0).uniform(size=(64, 10)).astype(np.float32)
    vae = tv.VAE(10, hidden_dims=(8,), latent_dim=2)
    alone = copy.deepcopy(vae)
    tv.fit(alone, x, epochs=2, batch_size=16, progress=False)
    held, inside = _HeldArray(x), []
    eps = np.zeros((4, 2), np.float32)
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(lambda: tv.fit(vae, held, epochs=2, batch_size=16, progress=False,
                                         callback=lambda t: inside.append(vae.loss_and_grads(x[:4], eps)[0])))
        assert held.inside.wait(10)                       # the first run holds the model
        for call in (lambda: tv.fit(vae, x, epochs=1, progress=False),
                     lambda: Trainer(vae).run(x, 1, progress=False),
                     lambda: vae.loss_and_grads(x[:4], eps)):
            with pytest.raises(TinyVAEError, match="training or computing gradients in another thread"):
                call()
        held.release.set()
        run.result(10)
    assert len(inside) == 8                               # the callback's own gradients: allowed
    assert vae.trainer.epoch == 2 and np.array_equal(vae.flat, alone.flat)   # the run as if alone


def test_a_hold_left_by_a_badly_timed_ctrl_c_never_locks_out_the_thread_it_stopped():
    """A Ctrl-C landing right after the model was taken, before the try that gives it back, had
    left a plain lock held: every later gradient call failed, in the one thread there was. The
    hold is now the thread's own (re-entrant): that thread goes on; only others are refused."""
    x = np.random.default_rng(0).uniform(size=(8, 10)).astype(np.float32)
    vae = tv.VAE(10, hidden_dims=(8,), latent_dim=2)
    eps = np.zeros((8, 2), np.float32)
    vae._computing.acquire()                              # as an interrupted entry leaves it
    assert np.isfinite(vae.loss_and_grads(x, eps)[0])
    tv.fit(vae, x, epochs=1, progress=False)
    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(TinyVAEError, match="in another thread"):
            pool.submit(lambda: vae.loss_and_grads(x, eps)).result(10)


def test_fit_from_a_callback_of_the_same_models_run_is_refused():
    """The thread hold lets a callback compute gradients; it had let a callback's fit through too,
    which trained a second epoch inside the first on a stale order of examples. Refused, and the
    outer run goes on as if alone."""
    x = np.random.default_rng(0).uniform(size=(64, 10)).astype(np.float32)
    vae, alone = tv.VAE(10, hidden_dims=(8,), latent_dim=2), tv.VAE(10, hidden_dims=(8,), latent_dim=2)
    tv.fit(alone, x, epochs=1, batch_size=16, progress=False)
    refused = []

    def nested(t):
        for call in (lambda: tv.fit(vae, x, epochs=1, progress=False), lambda: t.run(x, 2, progress=False)):
            with pytest.raises(TinyVAEError, match="being trained by the run that called this one"):
                call()
        refused.append(t.step)
    tv.fit(vae, x, epochs=1, batch_size=16, progress=False, callback=nested)
    assert refused == [1, 2, 3, 4] and vae.trainer.epoch == 1 and np.array_equal(vae.flat, alone.flat)
    tv.fit(vae, x, epochs=1, batch_size=16, progress=False)             # free again afterwards
    assert vae.trainer.epoch == 2


@pytest.mark.parametrize("cls", [tv.VAE, tv.Autoencoder])
def test_every_public_method_that_writes_the_shared_buffers_holds_the_model(cls):
    """The rule CONTRIBUTING states: a public method that runs the gradient pass or writes the
    workspace or the gradients runs under one_thread_at_a_time (else a second thread mixes its
    numbers in without a sign). Read from the source, so a new method is checked too."""
    import inspect
    writers = []
    for name, fn in vars(cls).items():
        if name.startswith("_") or not inspect.isfunction(fn):
            continue
        source = inspect.getsource(inspect.unwrap(fn))
        if any(k in source for k in ("self.workspace", "_loss_and_grads(", "self.grads[")):
            writers.append(name)
            assert getattr(fn, "__wrapped__", None) is not None, f"{cls.__name__}.{name} is not held"
    assert {"loss_and_grads", "training_loss_and_grads"} <= set(writers)
