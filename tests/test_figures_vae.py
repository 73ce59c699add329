"""Lesson 8's helpers (tinyvae.figures_vae) and the plot options they use."""
import numpy as np
import pytest

import tinyvae as tv
from tinyvae import figures_vae, recipes
from tinyvae import linear_gaussian as lg
from tinyvae.errors import TinyVAEError
from tinyvae.plots import plot_history, plot_latent_space
from tinyvae.vae_plots import plot_iwae_bound


@pytest.fixture(scope="module")
def digits():
    return tv.load_dataset("digits")


@pytest.fixture(scope="module")
def linear_vae(digits):
    """Probabilistic PCA as a VAE: log p(x) and the expected ELBO are exact for it."""
    return recipes.linear_gaussian_vae(digits.x_train, latent_dim=2, epochs=5)


def test_architecture_lists_encoder_then_decoder_widths():
    assert figures_vae.architecture(tv.VAE(64, hidden_dims=(128,), latent_dim=8)) == "64-128-8-128-64"
    assert figures_vae.architecture(tv.VAE(784, hidden_dims=(400, 200), latent_dim=20)) == "784-400-200-20-200-400-784"
    assert figures_vae.architecture(tv.VAE(64, hidden_dims=(), latent_dim=2)) == "64-2-64"
    uneven = tv.VAE(64, hidden_dims=(32,), latent_dim=3, decoder_hidden_dims=(16, 48))
    assert figures_vae.architecture(uneven) == "64-32-3-16-48-64"


def test_class_names(digits):
    names = figures_vae.FASHION_MNIST_CLASSES
    assert len(names) == 10 and names[0] == "T-shirt/top" and names[9] == "Ankle boot"
    assert figures_vae.class_names(digits) is None                   # a digit's label is its name
    fake = tv.data.Dataset(digits.x_train, digits.y_train, digits.x_test, digits.y_test, (8, 8), "fashion-mnist")
    assert figures_vae.class_names(fake) == names


def test_pictures_dataset_falls_back_to_digits_and_says_so(monkeypatch):
    real = figures_vae.load_dataset

    def offline(name, **kw):
        if name == "fashion-mnist":
            raise TinyVAEError("cannot find fashion-mnist (offline)")
        return real(name, **kw)

    monkeypatch.setattr(figures_vae, "load_dataset", offline)
    ds, note = figures_vae.pictures_dataset()
    assert ds.name == "digits" and "digits" in note and "Fashion-MNIST" in note


def test_iwae_versus_k_brackets_the_exact_log_likelihood(linear_vae, digits):
    x = digits.x_test[:40]
    exact = lg.log_marginal_likelihood(linear_vae, x)                # (N,) closed form
    exact_elbo = lg.expected_elbo(linear_vae, x)                     # (N,) E_q of the one-sample ELBO
    r = figures_vae.iwae_versus_k(linear_vae, x, (1, 10, 2000), seed=3, elbo_draws=50)
    assert r["iwae"].shape == (3, 40) and r["elbo"].shape == (40,) and list(r["ks"]) == [1, 10, 2000]
    # the ELBO from the same draws: equal to IWAE_1, never above IWAE_k, and an unbiased ELBO
    assert np.array_equal(r["elbo_k"][0], r["iwae"][0]) and np.all(r["elbo_k"] <= r["iwae"] + 1e-12)
    assert abs(r["elbo_k"][2].mean() - exact_elbo.mean()) < 0.05 * max(1.0, np.mean(exact - exact_elbo))
    # the ELBO estimate (analytic KL, 50 draws) is close to the exact expected ELBO
    assert abs(r["elbo"].mean() - exact_elbo.mean()) < 0.1 * max(1.0, np.mean(exact - exact_elbo))
    # the bound rises with k towards log p(x) and stays below it on average
    means = r["iwae"].mean(axis=1)
    assert means[0] < means[1] < means[2] <= exact.mean() + 1e-3
    assert abs(means[2] - exact.mean()) < 0.05 * (exact.mean() - means[0])


def test_plot_latent_space_names_the_classes_and_titles(digits, linear_vae):
    names = [f"class {i}" for i in range(10)]
    fig = plot_latent_space(linear_vae, digits.x_test, digits.y_test, class_names=names, title="My title")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "0: class 0" and labels[9] == "9: class 9"
    assert ax.get_title().startswith("My title\n")
    assert ax.get_xlabel() == "mu_1" and ax.get_ylabel() == "mu_2"
    default = plot_latent_space(linear_vae, digits.x_test, digits.y_test).axes[0]
    assert [t.get_text() for t in default.get_legend().get_texts()][:2] == ["0", "1"]
    # the title counts the points it shows, whatever x is (it had said "of the test set")
    assert default.get_title() == f"Latent space\nposterior means mu(x) of {len(digits.x_test)} examples"
    train = plot_latent_space(linear_vae, digits.x_train[:40]).axes[0]
    assert train.get_title().endswith("of 40 examples")
    some = plot_latent_space(linear_vae, digits.x_train[:40], max_points=25).axes[0]
    assert some.get_title().endswith("of the first 25 of 40 examples") and len(some.collections[0].get_offsets()) == 25


def test_plot_iwae_bound_panels():
    ks = np.array([1, 10, 100])
    iwae = -20 + np.array([[0.0], [0.3], [0.4]]) + np.zeros((3, 5))
    assert len(plot_iwae_bound(ks, iwae, np.full(5, -20.0)).axes) == 2       # per-image ELBO: the gain too
    assert len(plot_iwae_bound(ks, iwae, -20.0).axes) == 1                     # only its mean
    # the gain against the ELBO of the same draws: the plotted points are iwae - elbo_k
    elbo_k = iwae - np.array([[0.0], [0.1], [0.2]])
    gain = plot_iwae_bound(ks, iwae, np.full(5, -25.0), elbo_k=elbo_k).axes[1]
    assert np.allclose(gain.lines[0].get_ydata(), [0.0, 0.1, 0.2]) and "same k draws" in gain.get_ylabel()


def test_plot_kl_per_dimension_beta_shows_beta_zero_in_every_panel():
    """beta = 0 (a plain autoencoder's loss with a Gaussian encoder) is in the heat map, so the
    loss-terms panel must draw it too: its log2 axis had dropped it."""
    from tinyvae.vae_plots import plot_kl_per_dimension_beta
    betas = np.array([0.0, 0.5, 1.0, 4.0])
    sweep = {"betas": betas, "kl_per_dim": np.abs(np.random.default_rng(0).normal(size=(4, 3))),
             "active_units": np.array([3, 3, 2, 1]), "rec": np.array([20.0, 22, 25, 40]),
             "kl": np.array([9.0, 6, 4, 1])}
    fig = plot_kl_per_dimension_beta(sweep)
    terms = fig.axes[2]
    for ax in (terms, fig.axes[-1]):                    # the reconstruction line and the KL line
        xs, (lo, hi) = np.asarray(ax.lines[0].get_xdata()), ax.get_xlim()
        assert len(xs) == 4 and np.all((lo <= xs) & (xs <= hi)) and np.all(np.diff(xs) > 0)
    assert [t.get_text() for t in terms.get_xticklabels()] == ["0", "0.5", "1", "4"]


# --- what a class reads off the figures ----------------------------------------------------

def test_the_latent_space_mixes_the_classes_and_labels_each_at_its_median(digits, linear_vae):
    x, y = digits.x_test[:300], digits.y_test[:300]
    ax = plot_latent_space(linear_vae, x, y).axes[0]
    drawn = [c for c in ax.collections if len(c.get_offsets())]
    assert len(drawn) == 1 and len(drawn[0].get_offsets()) == len(x)      # one scatter: no class on top
    colours = drawn[0].get_facecolors()
    assert len({tuple(c) for c in colours[:30]}) > 3                       # shuffled, not class by class
    mu = np.asarray(linear_vae.encode(x)[0], dtype=np.float64)
    texts = {t.get_text(): t.get_position() for t in ax.texts}
    assert sorted(texts, key=int) == [str(c) for c in np.unique(y)]
    assert np.allclose(texts["3"], (np.median(mu[y == 3, 0]), np.median(mu[y == 3, 1])))


def test_loss_curves_name_the_held_out_data_and_keep_later_epochs_readable():
    history = {"epoch": [1, 2, 3, 4, 5], "loss": [42.0, 25.6, 25.0, 24.7, 24.5], "rec": [30.0, 22.0, 21.8, 21.7, 21.6],
               "kl": [12.0, 3.6, 3.2, 3.0, 2.9], "val_loss": [35.0, 25.4, 25.0, 24.8, 24.7],
               "val_rec": [25.0, 22.0, 21.9, 21.8, 21.8], "val_kl": [10.0, 3.4, 3.1, 2.96, 2.9]}
    loss, rec, kl = plot_history(history, val_label="test").axes
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["train (mean over the epoch)",
                                                                     "test (at the epoch's end)"]
    assert loss.get_ylim()[1] < 30 and "epoch 1 off the top: 42, 35" in [t.get_text() for t in loss.texts]
    assert kl.get_ylim()[0] == 0                                           # a KL is drawn from 0
    short = plot_history({k: v[:3] for k, v in history.items()}).axes[0]  # too few epochs to leave one out
    assert short.get_ylim()[1] > 42 and not short.texts
    ae = plot_history({"loss": [3.0, 2.0], "rec": [3.0, 2.0], "penalty": [0.0, 0.0]}, unit="nats per example")
    assert len(ae.axes) == 1 and ae.axes[0].get_ylabel() == "nats per example"   # loss = rec: one panel


def test_the_manifold_labels_no_off_centre_cell_as_the_middle(linear_vae):
    from tinyvae.plots import plot_latent_manifold
    for n, middle in ((20, False), (21, True)):
        ax = plot_latent_manifold(linear_vae, (8, 8), n=n).axes[0]
        labels = [float(t.get_text()) for t in ax.get_xticklabels()]
        assert labels == [-v for v in labels[::-1]]                       # mirrored about z = 0
        assert (0.0 in labels) == middle and len(labels) in (4, 5)


# --- the plotting functions a notebook calls, at their edges ------------------------------

def test_plot_history_shows_a_value_with_no_neighbour():
    # one epoch, or the first validated epoch after epochs fitted without x_val: a line alone draws nothing
    nan = float("nan")
    history = {"epoch": np.arange(1, 4), "loss": [3.0, 2.0, 1.5], "rec": [2.0, 1.5, 1.0], "kl": [1.0, 0.5, 0.5],
               "val_loss": [nan, nan, 1.7], "val_rec": [nan, nan, 1.2], "val_kl": [nan, nan, 0.5]}
    ax = plot_history(history).axes[0]                  # an array of epochs is fine too
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(dots) == 1 and list(dots[0].get_xdata()) == [3] and list(dots[0].get_ydata()) == [1.7]
    single = plot_history({"loss": [2.0], "rec": [1.5], "kl": [0.5]}).axes[0]
    assert [list(line.get_ydata()) for line in single.lines if line.get_marker() == "o"] == [[2.0]]
    with pytest.raises(TinyVAEError, match="'loss'"):
        plot_history({})


def test_plots_refuse_mismatched_inputs_clearly(linear_vae, digits):
    from tinyvae import plots
    x, y = digits.x_test[:30], digits.y_test[:30]
    with pytest.raises(TinyVAEError, match=r"by index \(3 names\), but the labels are 0, 1, .*9"):
        plot_latent_space(linear_vae, x, y, class_names=["a", "b", "c"])
    with pytest.raises(TinyVAEError, match="labels are -1, 0"):
        plot_latent_space(linear_vae, x[:4], np.array([-1, 0, 0, -1]), class_names=["a", "b"])
    with pytest.raises(TinyVAEError, match="labels are a, b"):
        plot_latent_space(linear_vae, x[:4], np.array(list("abab")), class_names=["a", "b"])
    names = [str(i) for i in range(10)]                    # float and bool labels are indices too
    for labels in (y.astype(float), y > 4):
        plot_latent_space(linear_vae, x, labels, class_names=names)
    plots.image_grid(x.reshape(-1, 8, 8), (8, 8))          # (n, h, w) pictures are fine
    with pytest.raises(TinyVAEError, match=r"one label per row of x \(30\), got shape \(10,\)"):
        plot_latent_space(linear_vae, x, y[:10])
    # too many labels (the training labels with the test images) had coloured the points wrongly
    with pytest.raises(TinyVAEError, match=r"one label per row of x \(30\), got shape \(60,\)"):
        plot_latent_space(linear_vae, x, digits.y_test[:60])
    with pytest.raises(TinyVAEError, match=r"got shape \(30, 1\)"):          # a column of labels
        plot_latent_space(linear_vae, x, y[:, None])
    # counts and shapes that are not whole numbers: one clear error each (TypeError, ValueError before)
    bad_calls = {"n must be a positive integer, got 3.0": lambda: plots.plot_reconstructions(linear_vae, x, (8, 8), n=3.0),
                 "ncols must be a positive integer, got 2.5": lambda: plots.image_grid(x, (8, 8), ncols=2.5),
                 "ncols must be a positive integer, got -2": lambda: plots.image_grid(x, (8, 8), ncols=-2),
                 "image_shape must be \\(height, width\\)": lambda: plots.image_grid(x, 16),
                 "rows must be a positive integer, got 0": lambda: plots.plot_reconstructions(linear_vae, x, (8, 8), rows=0),
                 "n must be a positive integer, got 0": lambda: plots.plot_samples(linear_vae, (8, 8), n=0),
                 "history\\['loss'\\] has 1 values for 2 epochs": lambda: plot_history({"epoch": [1, 2], "loss": [1.0]})}
    for match, call in bad_calls.items():
        with pytest.raises(TinyVAEError, match=match):
            call()
    with pytest.raises(TinyVAEError, match="rows of h\\*w = 5\\*7 = 35 pixels"):
        plots.image_grid(x, (5, 7))
    ae = tv.Autoencoder(64, hidden_dims=(), code_dim=2)
    for draw in (lambda: plots.plot_samples(ae, (8, 8)), lambda: plots.plot_latent_manifold(ae, (8, 8))):
        with pytest.raises(TinyVAEError, match="an autoencoder has none"):
            draw()
    one = plots.plot_reconstructions(linear_vae, x[0], (8, 8), n=1)          # a single image, as a 1-D row
    assert one.get_figwidth() >= 0.075 * len("inputs above, decoded mean at z = mu(x) below")


def test_grids_too_large_to_see_are_refused_before_anything_is_decoded(linear_vae, monkeypatch):
    """A 300 x 300 manifold had decoded 90 000 images (5.6 GB) for a figure 770 pixels wide."""
    from tinyvae import plots

    def never(*args, **kwargs):
        raise AssertionError("decoded before the check")
    monkeypatch.setattr(linear_vae, "decode", never)
    monkeypatch.setattr(linear_vae, "sample", never)
    big = {r"the latent manifold with n=51 \(an n x n grid\) asks for 2601 pictures": lambda: plots.plot_latent_manifold(linear_vae, (8, 8), n=51),
           r"plot_samples with n=2501 asks for 2501": lambda: plots.plot_samples(linear_vae, (8, 8), n=2501),
           r"plot_reconstructions with n=700, rows=2 asks for 2800": lambda: plots.plot_reconstructions(linear_vae, np.zeros((1500, 64)), (8, 8), n=700),
           r"the grid asks for 2501 pictures": lambda: plots.image_grid(np.zeros((2501, 64)), (8, 8))}
    for match, call in big.items():
        with pytest.raises(TinyVAEError, match=match + r".*at most 2500 \(50 x 50\)"):
            call()
    monkeypatch.undo()
    assert plots.plot_latent_manifold(linear_vae, (8, 8), n=50) is not None       # the largest allowed
    assert plots.plot_reconstructions(linear_vae, np.zeros((5, 64)), (8, 8), n=700) is not None   # 10 pictures
    # 1250 images in rows of 1000: two rows of pairs, 4000 pictures with the blank padding
    monkeypatch.setattr(linear_vae, "decode", never)
    with pytest.raises(TinyVAEError, match=r"plot_reconstructions with n=1000, rows=2 asks for 4000 pictures"):
        plots.plot_reconstructions(linear_vae, np.zeros((1250, 64)), (8, 8), n=1000)
