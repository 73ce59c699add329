"""The lesson stepper: ``tinyvae lesson [N]`` walks through a lesson cell by cell.

Lessons are plain Python scripts in ``lessons/NN_topic.py`` written in the "percent" format
that jupytext and editors understand: a line ``# %%`` starts a code cell and
``# %% [markdown]`` a text cell whose lines are comments. So a lesson

* runs top to bottom as ``python lessons/01_dense_backprop.py``,
* opens as a notebook with ``jupytext --to notebook lessons/01_dense_backprop.py``, and
* steps in a terminal with ``tinyvae lesson 1``: each cell's text or code is shown, code is
  run in one shared namespace and its output shown, then Enter goes on and ``q`` quits
  (``--no-pause`` runs straight through).

Lessons call :func:`quick` to shrink their data and epochs when ``TINYVAE_QUICK=1`` (each
then finishes in under a minute on two cores and still asserts its key numbers), and
:func:`save_figure` to write their figures (to ``lesson-output/<lesson>/``, or under ``$TINYVAE_LESSON_OUT``).
"""
import contextlib
import io
import os
import re
import shutil
import sys
import textwrap
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .errors import TinyVAEError

CELL_MARK = re.compile(r"^# %%(?P<rest>.*)$")


@dataclass
class Cell:
    kind: str          # "markdown" or "code"
    source: str        # for markdown: the text without the leading "# "
    line: int          # 1-based line number of the cell's first line in the file


def parse_cells(text):
    """Split a percent-format script into cells; text before the first marker is a code cell."""
    cells, kind, lines, start = [], "code", [], 1
    for number, line in enumerate(text.splitlines(), 1):
        m = CELL_MARK.match(line)
        if m:
            cells.append(Cell(kind, "\n".join(lines), start))
            kind = "markdown" if "[markdown]" in m.group("rest") else "code"
            lines, start = [], number + 1
        else:
            lines.append(line)
    cells.append(Cell(kind, "\n".join(lines), start))
    out = []
    for c in cells:
        if c.kind == "markdown":
            text = "\n".join(re.sub(r"^# ?", "", ln) for ln in c.source.splitlines())
            c = Cell("markdown", text.strip("\n"), c.line)
        else:
            leading = len(c.source) - len(c.source.lstrip("\n"))     # blank lines after the marker
            c = Cell("code", c.source.strip("\n"), c.line + leading)
        if c.source.strip():
            out.append(c)
    return out


# ----------------------------------------------------------------------------------------------
# finding lessons

def lessons_dir():
    """The ``lessons/`` folder: ``$TINYVAE_LESSONS`` when set (an error if it holds no lessons),
    else beside the package (a source checkout or an editable install), or in the current directory."""
    env = os.environ.get("TINYVAE_LESSONS", "")
    if env.strip():                               # asked for: that folder or an error, no fallback
        folder = Path(env)
        if not folder.is_dir():
            raise TinyVAEError(f"TINYVAE_LESSONS={env} is not a directory; point it at the lessons/ folder "
                               "of a tinyvae checkout, or unset it")
        if not any(folder.glob("[0-9][0-9]_*.py")):
            raise TinyVAEError(f"TINYVAE_LESSONS={env} holds no lessons (files named like 01_topic.py); point "
                               "it at the lessons/ folder of a tinyvae checkout, or unset it")
        return folder
    candidates = [Path(__file__).resolve().parent.parent / "lessons", Path.cwd() / "lessons"]
    for c in candidates:
        if c.is_dir() and any(c.glob("[0-9][0-9]_*.py")):
            return c
    raise TinyVAEError("cannot find the lessons/ folder (looked in "
                       + ", ".join(str(c) for c in candidates)
                       + "); the lessons come with tinyvae's source, not with 'pip install': run from a "
                         "clone of the repository (or its source archive), or set "
                         "TINYVAE_LESSONS=/path/to/lessons")


def list_lessons(folder=None):
    """[(number, title, path)] for every ``NN_topic.py`` lesson, in order."""
    folder = Path(folder) if folder else lessons_dir()
    found = []
    for path in sorted(folder.glob("[0-9][0-9]_*.py")):
        if not path.is_file():                       # a folder or a device named like a lesson
            continue
        title = path.stem[3:].replace("_", " ")
        for cell in parse_cells(read_lesson(path)):
            if cell.kind == "markdown":
                heading = cell.source.strip().splitlines()[0].lstrip("# ").strip()
                title = heading or title
                break
        found.append((int(path.name[:2]), title, path))
    return found


MAX_LESSON_BYTES = 1 << 20        # the longest lesson is about 20 KB


def read_lesson(path):
    """A lesson's text (UTF-8, at most MAX_LESSON_BYTES), or a TinyVAEError that names the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_LESSON_BYTES + 1)
    except OSError as e:
        raise TinyVAEError(f"cannot read the lesson {path}: {e.strerror or e}") from None
    if len(raw) > MAX_LESSON_BYTES:
        raise TinyVAEError(f"{path} is larger than {MAX_LESSON_BYTES:,} bytes: not a lesson; move it out of "
                           "the lessons folder")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TinyVAEError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); save the lesson as UTF-8") from None


def find_lesson(number, folder=None):
    for n, title, path in list_lessons(folder):
        if n == number:
            return path
    numbers = ", ".join(str(n) for n, _, _ in list_lessons(folder))
    raise TinyVAEError(f"there is no lesson {number}; the lessons are {numbers} (see 'tinyvae lesson')")


# ----------------------------------------------------------------------------------------------
# helpers the lessons call

def quick():
    """True when ``TINYVAE_QUICK=1``: lessons then use less data and fewer epochs. Empty, 0,
    false, no and off (in any case) mean a full run."""
    return os.environ.get("TINYVAE_QUICK", "").strip().lower() not in ("", "0", "false", "no", "off")


def output_dir(lesson=None):
    """Where a lesson writes its figures: ``$TINYVAE_LESSON_OUT`` or ``lesson-output``, then a
    folder named after ``lesson`` (its name such as "06_elbo", or its file)."""
    base = Path(os.environ.get("TINYVAE_LESSON_OUT") or "lesson-output")
    if lesson:
        base = base / Path(lesson).stem
    base.mkdir(parents=True, exist_ok=True)
    return base


def save_figure(fig, name, lesson=None):
    """Save a matplotlib figure as PNG beside the lesson's other outputs and print its path.

    ``lesson`` is the lesson's name ("06_elbo"): the lessons pass it as a string, not
    ``__file__``, which a notebook does not define. In a notebook (IPython) the saved PNG is also
    shown in place, whatever matplotlib backend the kernel has (a Figure built without pyplot
    has no inline display of its own); elsewhere it is only saved."""
    path = output_dir(lesson) / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"[figure saved: {path}]")
    if _in_ipython():
        from IPython.display import Image, display
        display(Image(data=path.read_bytes(), format="png"))
    import matplotlib.pyplot as plt
    plt.close(fig)              # returns nothing, so a notebook cell that ends here shows no Out[]


def _in_ipython():
    """True inside a Jupyter kernel (where a lesson opened as a notebook runs); a terminal
    IPython, which would print an image object as text, is not one."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


# ----------------------------------------------------------------------------------------------
# the stepper

def _line():
    """The rule's character: a box-drawing line, or "-" where the output's encoding has none (a
    Windows pipe or file in cp1252, where printing it would fail)."""
    try:
        "─·".encode(getattr(sys.stdout, "encoding", None) or "utf-8")
        return "─"
    except (UnicodeEncodeError, LookupError):
        return "-"


def _rule(title, width=None):
    """A rule with a title, as wide as the terminal allows up to 78 columns (a narrower one
    would wrap every rule onto two lines)."""
    if width is None:
        width = max(20, min(78, shutil.get_terminal_size((79, 24)).columns - 1))
    line = _line()
    if len(title) + 4 > width:                        # too long for the terminal: cut, never wrap
        title = title[:max(1, width - 7)] + "..."
    return f"{line * 2} {title} " + line * max(0, width - len(title) - 4)


_LIST_ITEM = re.compile(r"^([-*] |\d+[.)] )")


def _stdout_is_terminal():
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):            # replaced, or closed
        return False


def _fit_text(text, width=None):
    """A text cell as the terminal can show it: each paragraph of prose with a line wider than
    the terminal is wrapped to its width (a list item keeps its hanging indent); indented lines
    (formulas, code), headings and tables are shown as written, and so is every paragraph when
    the output is no terminal, or one wide enough."""
    if width is None:
        if not _stdout_is_terminal():
            return text
        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
    out, paragraph = [], []

    def flush():
        if paragraph and max(len(ln) for ln in paragraph) > width:
            item = _LIST_ITEM.match(paragraph[0])
            indent = " " * len(item.group(0)) if item else ""
            words = " ".join(ln.strip() for ln in paragraph)
            out.extend(textwrap.wrap(words, width, subsequent_indent=indent,
                                     break_long_words=False, break_on_hyphens=False))
        else:
            out.extend(paragraph)
        paragraph.clear()

    for ln in text.splitlines():
        table = ln.startswith("| ") or (ln.startswith("|") and ln.rstrip().endswith("|") and not ln.startswith("||"))
        prose = ln.strip() and not ln[0].isspace() and not ln.startswith(("#", "```")) and not table
        if prose and _LIST_ITEM.match(ln):
            flush()                                    # a list item starts a paragraph of its own
        if prose:
            paragraph.append(ln)
        else:
            flush()
            out.append(ln)
    flush()
    return "\n".join(out)


def _drop_typeahead():
    """Forget keys pressed while a cell ran (an impatient Enter would skip the next cell's text)."""
    try:
        import termios
        termios.tcflush(sys.stdin, termios.TCIFLUSH)
    except Exception:        # not POSIX (ImportError), or stdin no terminal (termios.error), or closed
        pass


def _figures_note(path):
    """Where the lesson's figures are, if it saved any; else None."""
    folder = Path(os.environ.get("TINYVAE_LESSON_OUT") or "lesson-output") / path.stem
    if folder.is_dir() and any(folder.glob("*.png")):
        return f"this lesson's figures are in {folder}{os.sep}"
    return None


def step_through(path, pause=True, read=input, write=print, interactive=None, start=1):
    """Show and run a lesson cell by cell. Returns 0 when it ran to the end, 1 on an error
    in a cell (its traceback is shown), and 0 when the reader quits with ``q``.

    ``start`` (a cell number, as the rules show them): the code of the cells before it runs
    first without being shown, output included, so that a class can go on where it stopped.

    ``interactive`` (default: stdin is a terminal): Ctrl-D at a prompt then stops the lesson,
    as it leaves Python's prompt, and keys typed while a cell runs are dropped; with input from
    a pipe or a file, its end means "run on to the end". Ctrl-C says in which cell it stopped,
    then raises KeyboardInterrupt."""
    path = Path(path)
    if interactive is None:
        interactive = read is input and sys.stdin is not None and sys.stdin.isatty()
    cells = parse_cells(read_lesson(path))
    if not (isinstance(start, int) and 1 <= start <= len(cells)):
        raise TinyVAEError(f"{path.name} has cells 1 to {len(cells)}; --from {start} is not one of them")
    # no __file__, as in a notebook: the lessons must run in either
    namespace = {"__name__": "__main__"}
    code_cells = sum(c.kind == "code" for c in cells)
    done = 0
    sys.path.insert(0, str(path.parent))
    i, cell, at_prompt = 0, None, False
    try:
        for i, cell in enumerate(cells, 1):
            if i < start:                                   # --from: run it unseen
                if i == 1 and any(c.kind == "code" for c in cells[:start - 1]):
                    write(f"(running the code of cells 1 to {start - 1} of {path.name} without showing it ...)")
                if cell.kind == "code":
                    done += 1
                    # unseen: their printed output, progress bars and warnings too
                    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                        failure = _run_cell(cell, path, namespace)
                    if failure:
                        write(failure)
                        return 1
                continue
            if cell.kind == "markdown":
                mode = "quick run" if quick() else "full run"
                write(_rule(f"{path.name}  (cell {i} of {len(cells)}, {mode})"))
                write(_fit_text(cell.source))
            else:
                done += 1
                write(_rule(f"code {done} of {code_cells}  (cell {i} of {len(cells)}, line {cell.line})"))
                write("\n".join(f"  {ln}" for ln in cell.source.splitlines()))
                write(_rule("output"))
                t0 = time.perf_counter()
                failure = _run_cell(cell, path, namespace)
                sys.stdout.flush()
                if failure:
                    write(failure)
                    return 1
                write(f"({time.perf_counter() - t0:.1f} s)")
            if pause and i < len(cells):
                if interactive:
                    _drop_typeahead()
                try:
                    line = _line()
                    at_prompt = True
                    answer = read(f"{line * 2} Enter: next cell {'·' if line == '─' else '-'} q: quit {line * 2} ")
                    at_prompt = False
                except EOFError:
                    at_prompt = False
                    write("")                          # the prompt's line ends here
                    if interactive:                    # Ctrl-D at the keyboard: leave, as Python's prompt does
                        answer = "q"
                    else:
                        pause = False                  # no one at the keyboard: run on
                        continue
                if answer.strip().lower() in ("q", "quit", "exit"):
                    write(f"stopped after cell {i} of {len(cells)}{_again(path, i + 1, len(cells))}")
                    _note_figures(path, write)
                    return 0
    except KeyboardInterrupt:
        if cell is None:
            where, resume = "before the first cell", 1
        elif i < start:                                 # among the cells run unseen
            where, resume = f"while running the cells before cell {start}", start
        elif at_prompt:                                 # cell i had finished
            where, resume = f"after cell {i} of {len(cells)}", i + 1
        else:
            where, resume = f"in cell {i} of {len(cells)} (line {cell.line} of {path.name})", i
        write(f"\nstopped {where}{_again(path, resume, len(cells), 'start there again')}")
        _note_figures(path, write)
        raise
    finally:
        sys.path.remove(str(path.parent))
    write(_rule("end of lesson"))
    _note_figures(path, write)
    return 0


def _again(path, resume, n_cells, how="go on from there"):
    """The command that steps through the lesson from cell ``resume``, after "stopped ..."."""
    if not path.name[:2].isdigit() or resume > n_cells:
        return ""
    return (f"; {how} with: tinyvae lesson {int(path.name[:2])}" + (" --quick" if quick() else "")
            + (f" --from {resume}" if resume > 1 else ""))


def _run_cell(cell, path, namespace):
    """Run a code cell in ``namespace``; None, or the traceback and an error line if it raised."""
    try:
        # padded so that a traceback names the line of the lesson file
        exec(compile("\n" * (cell.line - 1) + cell.source + "\n", str(path), "exec"), namespace)
    except Exception:
        return f"{traceback.format_exc()}\nerror: cell at line {cell.line} of {path.name} failed"
    return None


def _note_figures(path, write):
    note = _figures_note(path)
    if note:
        write(note)


def _cmd_lesson(args):
    if args.number is None:
        if args.start is not None:
            raise TinyVAEError(f"--from needs a lesson number: tinyvae lesson N --from {args.start}")
        for n, title, path in list_lessons():
            print(f"{n:>3}  {title}    ({path.name})")
        print("\n'tinyvae lesson N' steps through lesson N; '--no-pause' runs it straight through.")
        return 0
    number = _lesson_number(args.number)     # checked here: argparse would swallow the message of a type=
    path = find_lesson(number)
    if args.quick:
        os.environ["TINYVAE_QUICK"] = "1"
    import matplotlib
    matplotlib.use("Agg")
    start = 1 if args.start is None else _lesson_number(args.start, "--from", "cells",
                                                        "the rules show the cells' numbers")
    return step_through(path, pause=not args.no_pause, start=start)


def register(sub):
    p = sub.add_parser(
        "lesson", help="list the lessons, or step through one cell by cell",
        description="With no number: list the lessons. 'tinyvae lesson N' shows lesson N cell by cell -- "
                    "its text, its code, then the code's output -- in one shared namespace; Enter goes on, "
                    "q quits. The lessons are found in $TINYVAE_LESSONS, beside the package, or in ./lessons.")
    p.add_argument("number", nargs="?", help="the lesson to step through (1, 2, ...)")
    p.add_argument("--no-pause", action="store_true", help="run every cell without waiting for Enter")
    p.add_argument("--quick", action="store_true", help="small data and few epochs (TINYVAE_QUICK=1)")
    p.add_argument("--from", dest="start", metavar="CELL",
                   help="start at this cell (the number its rule shows); the code before it runs unseen first")
    p.set_defaults(func=_cmd_lesson)


def _lesson_number(text, option="the lesson number", what="lessons", hint="'tinyvae lesson' lists them"):
    """A lesson (or, for --from, a cell) number from the command line: a whole number from 1."""
    try:
        n = int(str(text).strip())
    except ValueError:
        raise TinyVAEError(f"{option} must be a whole number such as 1, got {text!r}; {hint}") from None
    if n < 1:
        raise TinyVAEError(f"{option}: {what} are numbered from 1, got {text!r}; {hint}")
    return n
