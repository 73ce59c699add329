"""`tinyvae figures --quick --out DIR` draws every registered figure, with captions."""
import os
import re
import subprocess
import sys
from pathlib import Path

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


# --------------------------------------------------------------------------------------------
# --out: never overwrite what `tinyvae figures` did not write; check everything before creating

ROOT = Path(__file__).resolve().parent.parent
CHEAP = "activations"          # a figure that draws in about a second in quick mode


def files_under(root):
    return {p.relative_to(root): p.read_bytes() for p in Path(root).rglob("*") if p.is_file()}


def figures_rejected(capsys, args, match):
    from tinyvae.cli import main
    rc = main(["figures", "--quick", *map(str, args)])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert re.search(match, lines[0]), lines[0]


def test_a_folder_figures_did_not_write_is_refused_and_kept(tmp_path, capsys):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "README.md").write_text("MY PROJECT README\n")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "activations.png").write_bytes(b"my own picture")
    before = files_under(tmp_path)
    for folder in (proj, notes):
        figures_rejected(capsys, ["--only", CHEAP, "--out", folder], "did not write.*new or empty directory")
    assert files_under(tmp_path) == before


def test_an_empty_folder_and_one_figures_wrote_are_accepted(tmp_path, capsys):
    from tinyvae.cli import main
    out = tmp_path / "figs"
    out.mkdir()
    assert main(["figures", "--quick", "--only", CHEAP, "--out", str(out)]) == 0
    first = (out / f"{CHEAP}.png").stat().st_mtime_ns
    assert main(["figures", "--quick", "--only", CHEAP, "--out", str(out)]) == 0     # our own folder: redrawn
    assert (out / f"{CHEAP}.png").stat().st_mtime_ns >= first
    assert f"`{CHEAP}.png`" in (out / "README.md").read_text()
    # the committed figures/ folder was written by `tinyvae figures`, so it may be redrawn
    from tinyvae.figures import check_out_dir
    committed = (ROOT / "figures" / "README.md").read_text().splitlines()
    assert committed[0] == "# Figures" and committed[2].startswith("Drawn by `tinyvae figures")
    assert check_out_dir(ROOT / "figures") == ROOT / "figures"


def test_bad_out_values_are_one_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("keep")
    before = files_under(tmp_path)
    figures_rejected(capsys, ["--only", CHEAP, "--out", ""], "--out is empty")
    figures_rejected(capsys, ["--only", CHEAP, "--out", "afile/sub"], "afile is a file")
    figures_rejected(capsys, ["--only", CHEAP, "--out", "afile"], "is a file")
    assert files_under(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["afile"]


@pytest.mark.parametrize("only, match", [("foo", "unknown figure"), (",", "names no figure"),
                                         ("", "names no figure"), (" , ", "names no figure")])
def test_bad_only_is_an_error_before_the_folder_is_created(tmp_path, capsys, only, match):
    out = tmp_path / "newfigs"
    figures_rejected(capsys, ["--only", only, "--out", out], match)
    assert not out.exists()
    with pytest.raises(TinyVAEError, match=match):
        make_figures(out, quick=True, only=only.split(","))
    assert not out.exists()


def test_figures_help_describes_the_command():
    from tinyvae.cli import build_parser
    description = build_parser().subcommands["figures"].description
    assert description and "new or empty" in description


@pytest.mark.parametrize("n", [1, 4, 64])
def test_the_sample_grid_title_fits_its_figure_when_saved_plainly(n):
    # plot_samples saved with plain savefig (no bbox_inches="tight"): a small grid used to cut
    # its two-line title off at both sides
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    import tinyvae as tv
    from tinyvae import plots
    fig = plots.plot_samples(tv.VAE(input_dim=64, hidden_dims=(8,), latent_dim=2), (8, 8), n=n)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    title = fig.axes[0].title.get_window_extent(canvas.get_renderer())
    assert fig.bbox.x0 <= title.x0 and title.x1 <= fig.bbox.x1
