"""The lessons: each runs in quick mode as a script, the stepper shows and runs cells."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinyvae.errors import TinyVAEError
from tinyvae.lessons import find_lesson, list_lessons, parse_cells, step_through

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))


def quick_env(tmp_path):
    return {**os.environ, "TINYVAE_QUICK": "1", "TINYVAE_LESSON_OUT": str(tmp_path), "MPLBACKEND": "Agg"}


def test_the_lessons_are_numbered_from_1_without_gaps_and_the_readme_lists_each():
    assert len(LESSONS) >= 8 and [int(p.name[:2]) for p in LESSONS] == list(range(1, len(LESSONS) + 1))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| \[\d\d [^]]+\]\(lessons/(\d\d_\w+\.py)\) \|", readme, flags=re.M)
    assert listed == [p.name for p in LESSONS], "the README's table of lessons"
    words = {8: "eight", 9: "nine", 10: "ten", 11: "eleven", 12: "twelve"}
    assert f"the {words.get(len(LESSONS), len(LESSONS))} lessons" in " ".join(readme.split())


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_quick_mode(path, tmp_path):
    # the timeout guards against a hang; how fast a lesson runs is not a test's business
    r = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=quick_env(tmp_path),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{path.name} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert list(tmp_path.rglob("*.png")), f"{path.name} saved no figure"


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_structure(path):
    cells = parse_cells(path.read_text(encoding="utf-8"))
    assert cells[0].kind == "markdown" and cells[0].source.startswith("# Lesson")
    assert sum(c.kind == "code" for c in cells) >= 4
    recap = [c for c in cells if c.kind == "markdown" and "In this lesson we" in c.source]
    assert recap and recap[-1] is [c for c in cells if c.kind == "markdown"][-1], "end with a recap"
    code = "\n".join(c.source for c in cells if c.kind == "code")
    assert "assert " in code, "a lesson asserts its key numbers"
    assert "__file__" not in code, "a notebook defines no __file__: pass the lesson's name"


def test_parse_cells_percent_format():
    text = "# %% [markdown]\n# # Title\n#\n# Some *text*.\n\n# %%\nx = 1\nprint(x)\n\n# %%\n\n"
    cells = parse_cells(text)
    assert [c.kind for c in cells] == ["markdown", "code"]
    assert cells[0].source == "# Title\n\nSome *text*."
    assert cells[1].source == "x = 1\nprint(x)" and cells[1].line == 7        # the first line of code
    assert parse_cells("# %%\n\n\ny = 2\n")[0].line == 4


def fake_lessons(tmp_path):
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "01_first.py").write_text(
        "# %% [markdown]\n# # Lesson 1: first\n\n# %%\nvalue = 6 * 7\nprint('value is', value)\n"
        "\n# %%\nprint('second cell sees', value)\n", encoding="utf-8")
    (folder / "02_broken.py").write_text("# %% [markdown]\n# # Lesson 2: broken\n# %%\n1 / 0\n",
                                         encoding="utf-8")
    return folder


def test_stepper_runs_cells_in_one_namespace_and_pauses(tmp_path, capsys):
    folder = fake_lessons(tmp_path)
    prompts = []

    def read(prompt):
        prompts.append(prompt)
        return ""

    assert step_through(folder / "01_first.py", pause=True, read=read) == 0
    out = capsys.readouterr().out
    assert "value is 42" in out and "second cell sees 42" in out and "Lesson 1: first" in out
    assert len(prompts) == 2                      # between the three cells


def test_stepper_runs_cells_as_a_notebook_would_and_numbers_them(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "03_nb.py").write_text("# %% [markdown]\n# # Lesson 3: nb\n\n# %%\n"
                                     "print('has __file__:', '__file__' in globals())\n", encoding="utf-8")
    for value, mode in (("1", "quick run"), ("Off", "full run"), ("", "full run")):
        monkeypatch.setenv("TINYVAE_QUICK", value)
        assert step_through(folder / "03_nb.py", pause=False) == 0
        out = capsys.readouterr().out
        assert "has __file__: False" in out
        assert f"(cell 1 of 2, {mode})" in out and "code 1 of 1  (cell 2 of 2, line " in out


@pytest.mark.parametrize("value", ["1", "yes", "True", "on"])
def test_quick_mode_is_on_for_a_true_value_and_off_for_a_false_one(value, monkeypatch):
    from tinyvae.lessons import quick
    monkeypatch.setenv("TINYVAE_QUICK", value)
    assert quick()
    for off in ("", "0", "false", "False", "NO", "off", " Off "):
        monkeypatch.setenv("TINYVAE_QUICK", off)
        assert not quick(), off


def test_save_figure_shows_the_figure_in_a_notebook(tmp_path, monkeypatch, capsys):
    import types

    from matplotlib.figure import Figure

    from tinyvae.lessons import save_figure
    shown = []
    ipython = types.ModuleType("IPython")
    ipython.version_info = (9, 0)                            # matplotlib looks at it
    display = types.ModuleType("IPython.display")
    display.display = shown.append

    class Image:                                             # IPython's: PNG bytes a notebook shows
        def __init__(self, data, format):
            self.data, self.format = data, format
    display.Image = Image
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    monkeypatch.setenv("TINYVAE_LESSON_OUT", str(tmp_path))
    fig = Figure()
    ipython.get_ipython = lambda: None                       # IPython imported, no shell: a script
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert save_figure(fig, "plain", "06_elbo") is None      # a cell ending here shows no Out[]
    assert (tmp_path / "06_elbo" / "plain.png").is_file() and shown == []
    ipython.get_ipython = lambda: type("TerminalInteractiveShell", (), {})()
    save_figure(fig, "terminal", "06_elbo")                  # terminal IPython: saved, not shown
    assert shown == []
    ipython.get_ipython = lambda: type("ZMQInteractiveShell", (), {})()     # inside a Jupyter kernel
    save_figure(fig, "inline", "06_elbo")
    # the PNG itself: displaying the Figure had shown '<Figure size ...>' text in every notebook
    png = (tmp_path / "06_elbo" / "inline.png").read_bytes()
    assert len(shown) == 1 and shown[0].format == "png" and shown[0].data == png
    assert "[figure saved:" in capsys.readouterr().out


def test_stepper_quits_on_q(tmp_path, capsys):
    folder = fake_lessons(tmp_path)
    assert step_through(folder / "01_first.py", pause=True, read=lambda p: "q") == 0
    out = capsys.readouterr().out
    # the documented way to stop gives the next class its command, as a Ctrl-C does
    assert "stopped after cell 1 of 3; go on from there with: tinyvae lesson 1 --from 2" in out
    assert "value is" not in out
    answers = iter(["", "q"])                         # quit at the last prompt: after cell 2 of 3
    assert step_through(folder / "01_first.py", read=lambda p: next(answers)) == 0
    assert "stopped after cell 2 of 3; go on from there with: tinyvae lesson 1 --from 3" in capsys.readouterr().out


def test_ctrl_d_at_the_keyboard_leaves_the_lesson_but_the_end_of_a_pipe_runs_on(tmp_path, capsys):
    folder = fake_lessons(tmp_path)

    def ctrl_d(prompt):
        raise EOFError
    assert step_through(folder / "01_first.py", read=ctrl_d, interactive=True) == 0   # stdin no terminal here
    out = capsys.readouterr().out
    assert "stopped after cell 1 of 3; go on from there with: tinyvae lesson 1 --from 2" in out
    assert "value is" not in out
    assert step_through(folder / "01_first.py", read=ctrl_d, interactive=False) == 0
    out = capsys.readouterr().out
    assert "second cell sees 42" in out and "end of lesson" in out


def test_ctrl_c_in_a_cell_says_where_the_lesson_stopped_and_where_its_figures_are(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "01_stop.py").write_text(
        "# %% [markdown]\n# # Lesson 1: stop\n\n# %%\nfrom tinyvae.lessons import output_dir\n"
        "(output_dir('01_stop') / 'a.png').write_bytes(b'png')\n\n# %%\nraise KeyboardInterrupt\n",
        encoding="utf-8")
    monkeypatch.setenv("TINYVAE_LESSON_OUT", str(tmp_path / "out"))
    with pytest.raises(KeyboardInterrupt):
        step_through(folder / "01_stop.py", pause=False)
    out = capsys.readouterr().out
    assert "stopped in cell 3 of 3 (line 9 of 01_stop.py); start there again with: tinyvae lesson 1 --from 3" in out
    assert f"this lesson's figures are in {tmp_path / 'out' / '01_stop'}{os.sep}" in out


def test_from_a_cell_runs_the_code_before_it_unseen_and_shows_the_rest(tmp_path, capsys):
    folder = fake_lessons(tmp_path)
    source = (folder / "01_first.py").read_text(encoding="utf-8")
    (folder / "01_first.py").write_text(source.replace("print('value is', value)",
                                                       "print('value is', value)\nimport sys\nprint('bar', file=sys.stderr)"),
                                        encoding="utf-8")
    assert step_through(folder / "01_first.py", pause=False, start=3) == 0
    out, err = capsys.readouterr()
    assert "bar" not in err                                            # a progress bar's stderr too
    assert out.startswith("(running the code of cells 1 to 2 of 01_first.py without showing it ...)")
    assert "value is" not in out and "Lesson 1: first" not in out          # cells 1-2: run, not shown
    assert "second cell sees 42" in out and "(cell 3 of 3, line 11)" in out  # cell 3 had cell 2's value
    with pytest.raises(TinyVAEError, match="has cells 1 to 3; --from 4 is not one of them"):
        step_through(folder / "01_first.py", pause=False, start=4)


def test_a_stop_suggests_the_cell_to_start_from_in_the_same_mode(tmp_path, monkeypatch, capsys):
    folder = fake_lessons(tmp_path)

    def ctrl_c_at_the_prompt(prompt):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):                         # cell 1 had finished: go on at 2
        step_through(folder / "01_first.py", read=ctrl_c_at_the_prompt)
    assert "stopped after cell 1 of 3; start there again with: tinyvae lesson 1 --from 2" in capsys.readouterr().out
    (folder / "03_stop.py").write_text("# %%\nx = 1\n\n# %%\nraise KeyboardInterrupt\n\n# %%\nprint(x)\n",
                                       encoding="utf-8")
    monkeypatch.setenv("TINYVAE_QUICK", "1")
    with pytest.raises(KeyboardInterrupt):                         # stopped among the unseen cells
        step_through(folder / "03_stop.py", pause=False, start=3)
    out = capsys.readouterr().out
    assert "stopped while running the cells before cell 3; start there again with: tinyvae lesson 3 --quick --from 3" in out


def test_from_on_the_command_line(tmp_path, monkeypatch, capsys):
    from tinyvae.cli import main
    monkeypatch.setenv("TINYVAE_LESSONS", str(fake_lessons(tmp_path)))
    assert main(["lesson", "1", "--from", "3", "--no-pause"]) == 0
    assert "second cell sees 42" in capsys.readouterr().out
    assert main(["lesson", "1", "--from", "three"]) == 2
    assert "--from must be a whole number" in capsys.readouterr().err
    assert main(["lesson", "--from", "3"]) == 2                       # had listed the lessons, --from ignored
    assert "--from needs a lesson number: tinyvae lesson N --from 3" in capsys.readouterr().err


def test_the_rules_fit_a_narrow_terminal(monkeypatch):
    import shutil

    from tinyvae.lessons import _rule
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback: os.terminal_size((50, 20)))
    assert len(_rule("code 1 of 7")) == 49
    long = _rule("08_training_a_vae.py  (cell 11 of 17, quick run)")   # cut, never wrapped
    assert len(long) <= 49 and "..." in long
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback: os.terminal_size((200, 20)))
    assert len(_rule("code 1 of 7")) == 78


def test_text_cells_fit_a_narrow_terminal(monkeypatch, capsys):
    """The lessons' prose runs to 95 columns; in a narrower terminal each paragraph is wrapped
    to fit, words and their order kept, and formulas (indented) are left as written."""
    import shutil

    from tinyvae.lessons import _fit_text
    text = (ROOT / "lessons" / "08_training_a_vae.py").read_text(encoding="utf-8")
    cells = [c.source for c in parse_cells(text) if c.kind == "markdown"]
    assert max(len(ln) for c in cells for ln in c.splitlines() if not ln.startswith(" ")) > 79
    for source in cells:
        fitted = _fit_text(source, width=60)
        prose = [ln for ln in fitted.splitlines() if ln.strip() and not ln[0].isspace()]
        assert all(len(ln) <= 60 for ln in prose if " " in ln)       # a single long word may overrun
        assert fitted.split() == source.split()                       # nothing lost, nothing moved
        assert [ln for ln in fitted.splitlines() if ln.startswith("    ")] == \
            [ln for ln in source.splitlines() if ln.startswith("    ")]
        assert _fit_text(source, width=200) == source                 # a wide terminal: as written
    item = _fit_text("- a list item that is much too long for the terminal's width here", width=30)
    assert item.splitlines()[1].startswith("  ") and item.startswith("- a list")
    # a prose line that begins with a norm, ||J v||, is prose, not a table row (lesson 4)
    norm = "||J_r v_k|| with J_r the Jacobian of the reconstruction, for each direction v_k in turn"
    assert all(len(ln) <= 40 for ln in _fit_text(norm, width=40).splitlines())
    assert _fit_text("| a | b |\n| --- | --- |", width=5) == "| a | b |\n| --- | --- |"
    # in the stepper: the terminal's width; no terminal (a pipe, a file, even with $COLUMNS
    # exported): the text as written
    from tinyvae import lessons
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback: os.terminal_size((50, 20)))
    monkeypatch.setattr(lessons, "_stdout_is_terminal", lambda: True)
    assert _fit_text(cells[0]) == _fit_text(cells[0], width=49)
    monkeypatch.setattr(lessons, "_stdout_is_terminal", lambda: False)
    assert _fit_text(cells[0]) == cells[0]


def test_stepper_reports_a_failing_cell(tmp_path, capsys):
    folder = fake_lessons(tmp_path)
    assert step_through(folder / "02_broken.py", pause=False) == 1
    out = capsys.readouterr().out
    assert "ZeroDivisionError" in out and "02_broken.py\", line 4" in out    # the file's own line


def test_listing_lessons_skips_what_is_no_file_and_names_a_file_it_cannot_read(tmp_path):
    folder = fake_lessons(tmp_path)
    (folder / "03_folder.py").mkdir()                       # had been an IsADirectoryError
    assert [n for n, _, _ in list_lessons(folder)] == [1, 2]
    (folder / "04_latin1.py").write_bytes("# %% [markdown]\n# # Le\u00e7on\n".encode("latin-1"))
    with pytest.raises(TinyVAEError, match="04_latin1.py is not UTF-8 text"):
        list_lessons(folder)
    (folder / "04_latin1.py").write_bytes(b"# " + b"x" * (2 << 20))
    with pytest.raises(TinyVAEError, match="04_latin1.py is larger than"):
        list_lessons(folder)


def test_list_and_find(tmp_path):
    folder = fake_lessons(tmp_path)
    assert [(n, t) for n, t, _ in list_lessons(folder)] == [(1, "Lesson 1: first"), (2, "Lesson 2: broken")]
    assert find_lesson(2, folder).name == "02_broken.py"
    with pytest.raises(TinyVAEError, match="no lesson 9"):
        find_lesson(9, folder)


def test_lesson_command_lists_and_runs_lesson_1(tmp_path):
    env = quick_env(tmp_path)
    r = subprocess.run([sys.executable, "-m", "tinyvae", "lesson"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "01_" in r.stdout and "08_" in r.stdout
    r = subprocess.run([sys.executable, "-m", "tinyvae", "lesson", "1", "--no-pause"], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "end of lesson" in r.stdout and "In this lesson we" in r.stdout


def test_a_lesson_prints_through_an_output_that_lacks_its_symbols(tmp_path):
    """A Windows pipe or file is cp1252: the lesson's sigma and the stepper's rules must not end it."""
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "01_greek.py").write_text("# %% [markdown]\n# # Lesson 1: σ and ∂\n\n# %%\nprint('ε =', 0.5)\n",
                                        encoding="utf-8")
    env = {**quick_env(tmp_path), "PYTHONIOENCODING": "cp1252", "TINYVAE_LESSONS": str(folder)}
    r = subprocess.run([sys.executable, "-m", "tinyvae", "lesson", "1", "--no-pause"], cwd=tmp_path,
                       capture_output=True, env=env, timeout=120)
    out = r.stdout.decode("cp1252")
    assert r.returncode == 0, out[-2000:] + r.stderr.decode("cp1252", "replace")[-2000:]
    assert "Lesson 1: \\u03c3 and \\u2202" in out and "\\u03b5 = 0.5" in out
    assert "-- code 1 of 1" in out and "end of lesson" in out


def test_lesson_command_bad_number(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinyvae", "lesson", "99"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


@pytest.mark.parametrize("number, says", [("0", "numbered from 1"), ("-1", "numbered from 1"),
                                          ("abc", "whole number"), ("1.5", "whole number"), ("", "whole number")])
def test_a_bad_lesson_number_is_the_intended_message(number, says, capsys):
    from tinyvae.cli import main
    assert main(["lesson", number]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert says in err and "invalid" not in err and "'tinyvae lesson' lists them" in err


def test_tinyvae_lessons_pointing_nowhere_is_an_error(tmp_path, monkeypatch, capsys):
    from tinyvae.cli import main
    monkeypatch.setenv("TINYVAE_LESSONS", str(tmp_path / "nonexistent"))
    assert main(["lesson"]) == 2
    assert "TINYVAE_LESSONS" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("TINYVAE_LESSONS", str(tmp_path / "empty"))
    assert main(["lesson", "1"]) == 2
    assert "holds no lessons" in capsys.readouterr().err
    monkeypatch.setenv("TINYVAE_LESSONS", str(fake_lessons(tmp_path)))      # and a real folder is used
    assert main(["lesson"]) == 0
    out = capsys.readouterr().out
    assert "Lesson 2: broken" in out and "08_" not in out


def test_lesson_help_describes_the_command():
    from tinyvae.cli import build_parser
    assert build_parser().subcommands["lesson"].description
