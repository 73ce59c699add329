"""`tinyvae figures --quick --out DIR` draws every registered figure, with captions."""
import subprocess
import sys

import matplotlib.image as mpimg
import pytest

from tinyvae.figures import FIGURES, make_figures
from tinyvae.errors import TinyVAEError

REQUIRED = {   # the figures the chapter needs, by what they show (see the figures issue)
    "reconstructions", "samples", "latent_manifold", "latent_by_class", "training_curves",
    "denoising_field", "linear_ae_vs_pca", "gradcheck_step_size", "gradient_variance",
    "kl_per_dimension_beta",
}


def test_every_required_figure_is_registered():
    names = {name for name, _, _ in FIGURES}
    missing = {r for r in REQUIRED if not any(r in n for n in names)}
    assert not missing, f"no figure for {sorted(missing)}"
    assert len(names) == len(FIGURES), "figure names must be unique"
    assert all(caption.strip() for _, caption, _ in FIGURES)


def test_quick_figures_command_draws_every_figure(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinyvae", "figures", "--quick", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    readme = (tmp_path / "README.md").read_text()
    for name, caption, _ in FIGURES:
        png = tmp_path / f"{name}.png"
        assert png.exists(), name
        image = mpimg.imread(png)
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert image[..., :3].std() > 0.02, f"{name}.png looks blank"
        assert caption in readme


def test_unknown_figure_and_file_as_out(tmp_path):
    with pytest.raises(TinyVAEError, match="unknown figure"):
        make_figures(tmp_path / "f", quick=True, only=["nope"])
    f = tmp_path / "file.txt"
    f.write_text("keep")
    with pytest.raises(TinyVAEError, match="is a file"):
        make_figures(f, quick=True)
    assert f.read_text() == "keep"


@pytest.mark.parametrize("seed", ["-3", "x", "1.5"])
def test_a_bad_seed_is_one_clear_error_and_draws_nothing(tmp_path, capsys, seed):
    from tinyvae.cli import main
    out = tmp_path / "figs"
    assert main(["figures", "--quick", "--only", "linear_ae_vs_pca", "--seed", seed, "--out", str(out)]) == 2
    assert "error: --seed must be a non-negative integer" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(TinyVAEError, match="non-negative integer"):
        make_figures(out, quick=True, seed=-1)
