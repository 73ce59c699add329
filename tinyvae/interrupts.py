"""Ctrl-C, SIGTERM and SIGHUP between two minibatches: deferred, then raised at a safe point.

Training defers these signals with :func:`defer_sigint`, so a run stops only between two
minibatches (or two writes), where its state is consistent and can be saved. The command line
reports the stop with :func:`interruption`'s words and exit status. This module imports
nothing heavy, so the command line can use it before the library (and numba) has loaded.
"""
import contextlib
import signal
import sys
import threading

# SIGTERM (kill, timeout, a batch system's time limit) and SIGHUP (a closed terminal or ssh
# session) stop a 'tinyvae train' as Ctrl-C does
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A stop asked for by SIGTERM or SIGHUP, raised where Ctrl-C raises KeyboardInterrupt;
    ``signum`` says which signal."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_interrupt(signum, frame):
    """A signal handler that turns SIGTERM or SIGHUP into :class:`Interrupted` (the command line
    installs it, so those signals stop it cleanly, as Ctrl-C does)."""
    raise Interrupted(signum)


def interruption(e):
    """(exit status, words) for a KeyboardInterrupt: 130 and "interrupted" for Ctrl-C, 128 + the
    signal and "stopped by SIGTERM" (or SIGHUP) for :class:`Interrupted`."""
    signum = getattr(e, "signum", signal.SIGINT)
    words = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    return 128 + int(signum), words


class _Deferred:
    requested = False
    signum = None

    def interrupt(self):
        """The exception for the deferred signal: KeyboardInterrupt for Ctrl-C, else Interrupted."""
        return KeyboardInterrupt() if self.signum in (None, signal.SIGINT) else Interrupted(self.signum)


@contextlib.contextmanager
def defer_sigint():
    """Within the block, Ctrl-C (SIGINT) only sets ``.requested`` (and ``.signum``); the caller
    raises ``.interrupt()`` at a safe point. SIGTERM and SIGHUP are deferred the same way when
    the command line has turned them into :class:`Interrupted` (:func:`raise_interrupt`); in a
    program of the user's own they keep whatever they do there (by default, end the process).
    Outside the main thread (where signals cannot be caught) nothing changes."""
    flag = _Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag.requested = True
        flag.signum = flag.signum or signum

    previous = {}
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if (signum == signal.SIGINT and current is not signal.SIG_IGN) or current is raise_interrupt:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield flag
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def report(text, file=None, stop=False):
    """Print ``text`` on stderr (or ``file``); a terminal that has gone (a write error after
    SIGHUP) is ignored, so a stop still saves the run and the exit status still says why. A
    closed pipe is not: the command line ends quietly with 141 on it.

    ``stop``: the message of a stop by a signal. A Ctrl-C also ends a reader in the same
    pipeline (``tinyvae train 2>&1 | tee log``), so the pipe is closed by then: the message goes
    to the terminal itself, if there is one, and the stop keeps its status (130, not 141)."""
    try:
        print(text, file=sys.stderr if file is None else file, flush=True)
    except BrokenPipeError:                 # the reader went away (| head): the caller ends quietly
        if not stop:
            raise
        try:
            with open("/dev/tty", "w") as tty:
                print(text, file=tty, flush=True)
        except OSError:                     # no controlling terminal (Windows, a daemon)
            pass
    except OSError:
        pass
