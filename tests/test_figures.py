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
    (out / f"{CHEAP}.png").write_bytes(b"stale")               # so a redraw is visible
    assert main(["figures", "--quick", "--only", CHEAP, "--out", str(out)]) == 0     # our own folder: redrawn
    assert (out / f"{CHEAP}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
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


# --------------------------------------------------------------------------------------------
# quick and full-size figures never mix in one folder; the README says which a folder holds

def figures_folder(root, quick, names=(CHEAP,)):
    """A folder as `tinyvae figures` leaves it, without drawing: stand-in PNGs and the README."""
    from tinyvae.figures import write_readme
    root.mkdir()
    for name in names:
        (root / f"{name}.png").write_bytes(b"stand-in for a " + (b"quick" if quick else b"full") + b" figure")
    write_readme(root, quick=quick)
    return root


def test_quick_refuses_a_folder_of_full_size_figures(tmp_path, capsys):
    from tinyvae.figures import check_out_dir
    full = figures_folder(tmp_path / "full", quick=False)
    before = files_under(tmp_path)
    for only in ([], ["--only", CHEAP]):
        figures_rejected(capsys, [*only, "--out", full], r"holds full-size figures.*another folder.*"
                                                         r"figures-quick.*or drop --quick")
    assert files_under(tmp_path) == before
    with pytest.raises(TinyVAEError, match="full-size"):         # the committed folder, checked only
        check_out_dir(ROOT / "figures", quick=True)


def test_quick_draws_into_figures_quick_by_default(tmp_path, capsys, monkeypatch):
    from tinyvae.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["figures", "--quick", "--only", CHEAP]) == 0
    assert sorted(os.listdir(tmp_path)) == ["figures-quick"]
    readme = (tmp_path / "figures-quick" / "README.md").read_text()
    assert "Drawn by `tinyvae figures --quick`" in readme and f"`{CHEAP}.png`" in readme


def test_some_full_size_figures_never_go_among_quick_ones(tmp_path, capsys):
    from tinyvae.cli import main
    quick = figures_folder(tmp_path / "quick", quick=True)
    before = files_under(tmp_path)
    assert main(["figures", "--only", CHEAP, "--out", str(quick)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "holds quick figures" in err and "drop --only" in err
    assert files_under(tmp_path) == before


def test_only_accepts_the_png_file_name(tmp_path, capsys):
    from tinyvae.cli import main
    out = tmp_path / "figs"
    assert main(["figures", "--quick", "--only", f"{CHEAP}.png", "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["README.md", f"{CHEAP}.png"]
    figures_rejected(capsys, ["--only", ".png", "--out", tmp_path / "other"], "--only names no figure")


def test_every_caption_names_its_lesson():
    unnamed = [name for name, caption, _ in FIGURES if not re.search(r"[(;] ?lesson \d\)\.$", caption)]
    assert not unnamed, f"captions without '(lesson N)': {unnamed}"


def test_the_committed_readme_is_what_the_code_writes(tmp_path):
    # figures/README.md lists the committed PNGs with the captions of the @figure decorators;
    # after editing a caption, tinyvae.figures.write_readme("figures") updates it without redrawing
    committed = ROOT / "figures"
    copy = figures_folder(tmp_path / "copy", quick=False, names=[p.stem for p in committed.glob("*.png")])
    assert (committed / "README.md").read_text(encoding="utf-8") == (copy / "README.md").read_text(encoding="utf-8")
    # and the committed PNGs are the registered figures: a new one is drawn into figures/
    # (tinyvae figures --only NAME --out figures), a removed one deleted from it
    drawn, registered = {p.stem for p in committed.glob("*.png")}, {name for name, _, _ in FIGURES}
    assert drawn == registered, f"registered, not in figures/: {sorted(registered - drawn)}; " \
                                f"in figures/, not registered: {sorted(drawn - registered)}"


def test_every_module_of_figures_is_in_the_chapter():
    """figures.py imports the modules CHAPTER names; one left out would register nothing, and
    'tinyvae figures --only' would call its figures unknown."""
    from tinyvae.figures import CHAPTER
    modules = {p.stem for p in (ROOT / "tinyvae").glob("figures_*.py")}
    assert modules == set(CHAPTER)


def test_importing_the_figures_leaves_matplotlib_s_backend_alone():
    """tinyvae.figures had switched matplotlib to Agg on import, and lessons 1-4 and 8 import it:
    in a notebook, the teacher's own plt.show() then showed nothing."""
    script = ("import matplotlib\nmatplotlib.use('svg')\n"
              "import tinyvae.figures, tinyvae.figures_ae, tinyvae.figures_vae, tinyvae.figures_backprop\n"
              "print(matplotlib.get_backend())\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "svg"


def test_the_figures_keep_the_chapter_order_whichever_module_is_imported_first():
    """Importing figures_backprop first (as lessons 1 and 2 do) had put its figures last, so
    the README written after it listed the figures out of order."""
    script = "import tinyvae.{}\nfrom tinyvae.figures import FIGURES\nprint(' '.join(n for n, _, _ in FIGURES))"
    orders = {m: subprocess.run([sys.executable, "-c", script.format(m)], capture_output=True, text=True,
                                check=True).stdout.split()
              for m in ("figures", "figures_backprop", "figures_vae")}
    assert orders["figures_backprop"] == orders["figures"] == orders["figures_vae"]
    assert orders["figures"][:3] == ["activations", "backprop_graph", "gradcheck_step_size"]
