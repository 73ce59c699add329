"""The ``tinyvae`` command line.

Every subcommand's handler lives beside the code it drives; this module only parses options
and turns errors into the promised behaviour: bad input prints one line ``error: ...`` and
exits with status 2, Ctrl-C exits with status 130 (SIGTERM and SIGHUP stop a command the same
way, with 143 and 129; the program itself then ends by that signal, which is how a shell sees
those statuses, so that a loop of runs stops too), a closed pipe (``| head``) ends quietly.
"""
import argparse
import contextlib
import difflib
import importlib
import os
import re
import signal
import sys
import threading

from .errors import TinyVAEError
from .interrupts import STOP_SIGNALS, defer_sigint, interruption, raise_interrupt, report


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad options as ``error: ...`` with exit status 2 (no usage dump)."""

    def error(self, message):
        bad = re.search(r"invalid choice: '?([^' ]*)'? \(choose from (.*)\)", message)
        if bad:                                       # tinyvae trian: did you mean 'train'?
            choices = [c.strip().strip("'") for c in bad.group(2).split(",")]   # quoted or not (3.12.4+)
            message += _did_you_mean(bad.group(1), choices)
        raise TinyVAEError(f"{message} (see 'tinyvae {self.prog.split()[-1]} --help')"
                           if " " in self.prog else f"{message} (see 'tinyvae --help')")


def _did_you_mean(word, choices):
    """"; did you mean 'train'?" for the choice closest to ``word`` (case aside), else ""."""
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean '{lowered[close[0]]}'?" if close else ""


def _cmd_gradcheck(args):
    from .checks import run_gradcheck
    return run_gradcheck(args.model, verbose=not args.quiet)


def build_parser():
    p = _Parser(prog="tinyvae", description="Autoencoders and VAEs from scratch, every gradient checked.")
    from . import __version__
    p.add_argument("--version", action="version", version=f"tinyvae {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    g = sub.add_parser(
        "gradcheck", help="check every hand-written gradient against finite differences",
        description="Compare every hand-written backward pass (layers, activations, VAEs, autoencoders) with "
                    "central differences in float64 and print the relative error per parameter array; exits "
                    "with status 1 if any error is above 1e-7.")
    g.add_argument("--model", default="all", help="layers | vae | ae | all (default: all)")
    g.add_argument("--quiet", action="store_true",
                   help="one line per configuration (its worst error) and the summary, without the per-array tables")
    g.set_defaults(func=_cmd_gradcheck)
    for module in ("commands", "lessons", "figures", "bench"):   # train/eval/sample, lesson, figures, bench
        importlib.import_module(f"tinyvae.{module}").register(sub)
    p.subcommands = sub.choices          # name -> parser: errors point at the subcommand's --help
    return p


PATH_ARGUMENTS = ("out", "resume", "run_dir", "data", "torch_ref")    # "~/runs/a" as the shell would expand it


@contextlib.contextmanager
def _stop_signals():
    """While a command runs, SIGTERM and SIGHUP (when nothing else handles them) stop it as Ctrl-C
    does: a checkpoint, a message, status 128 + the signal. Restored afterwards."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            if signum != signal.SIGINT and signal.getsignal(signum) == signal.SIG_DFL:
                previous[signum] = signal.signal(signum, raise_interrupt)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def entry():
    """The ``tinyvae`` program (and ``python -m tinyvae``): :func:`main`, and after a stop by a
    signal (the state saved, the message printed), that signal again with its default action.

    A shell tells a program that was stopped by Ctrl-C from one that caught it and carried on
    by how the program ended, not by the status 130: only a process that dies of SIGINT stops
    a loop such as ``for s in 1 2 3; do tinyvae train --seed $s ...; done`` at the first Ctrl-C
    (bash went on to the next run). The shell still reports 130 (143, 129)."""
    status = main()
    signum = status - 128
    if os.name == "posix" and signum in [int(s) for s in STOP_SIGNALS]:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    return status


def main(argv=None):
    """Run the command line ``argv`` (default: the program's arguments); returns the exit
    status (0, 1 for a failed check, 2 for bad input, 128 + the signal after a stop)."""
    _printable_output()
    try:
        with _stop_signals():
            return _main(argv)
    except KeyboardInterrupt as e:              # a stop outside any command's own handling
        status, words = interruption(e)
        report(words, stop=True)
        return status


def _printable_output():
    """Let stdout print what its encoding lacks as escapes (\\u03c3) instead of failing: a
    Windows pipe or file is cp1252, and the lessons' text has sigma, epsilon and integrals."""
    try:
        "σ∂∫ε─".encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        reconfigure = getattr(sys.stdout, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    except (AttributeError, TypeError):          # a stand-in stdout without an encoding
        pass


def _main(argv):
    try:
        # building the parser loads the library (numba, matplotlib): a Ctrl-C inside a C
        # extension's import can crash the interpreter, so it waits until the imports are done
        with defer_sigint() as stop:
            parser = build_parser()
        if stop.requested:
            raise stop.interrupt()
        args, extra = parser.parse_known_args(argv)
        for name in PATH_ARGUMENTS:
            value = getattr(args, name, None)
            if isinstance(value, str) and value.startswith("~"):
                setattr(args, name, os.path.expanduser(value))
        if extra:                  # reported by the subcommand's parser, which points at its own --help
            sub = parser.subcommands.get(getattr(args, "command", None))
            options = [o for a in (sub or parser)._actions for o in a.option_strings if o.startswith("--")]
            hint = ""
            for word in extra:                     # --K: did you mean '--k'?
                if word.startswith("-") and not hint:
                    hint = _did_you_mean(word.split("=")[0], options)
            (sub or parser).error(f"unrecognized arguments: {' '.join(extra)}{hint}")
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        from .kernels import BACKEND_ENV_ERROR      # an invalid TINYVAE_BACKEND, found at import
        if BACKEND_ENV_ERROR:
            raise TinyVAEError(BACKEND_ENV_ERROR)
        status = args.func(args)
        return int(status or 0)
    except TinyVAEError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        status, words = interruption(e)
        report(words, stop=True)
        return status
    except BrokenPipeError:
        # the reader of our output went away (tinyvae ... | head): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141                                   # 128 + SIGPIPE, the shell's status for it


if __name__ == "__main__":
    sys.exit(entry())
