"""The root of sercache's input errors, and the one wrapper that turns them into `command: error: ...`.

Every stage raises a subclass of SercacheError (CacheError, HeadError, AudioError, ManifestError, ...)
when what the user gave cannot work: a missing file, a bad option value, a store without the asked
feature set. Such an error is the user's to fix, so a command prints its message on one line and
exits with status 2. Anything else is a bug in sercache and keeps its traceback.

A reader that stops early (`sercache cache info STORE | head -1`) is no error either: the command ends
quietly with status 141, what a shell reports for a program that SIGPIPE ended (128 + 13), as `cat` or `ls` give
there; `set -o pipefail` scripts can tell it from success.
"""

from __future__ import annotations

import os
import select
import sys
import warnings
from functools import partial
from typing import Callable

BROKEN_PIPE_STATUS = 141  # 128 + SIGPIPE


class SercacheError(Exception):
    """Bad input or configuration; the message names what is wrong and, where it can, how to fix it."""


def run_command(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command's body: input errors print `prog: error: message` and give exit status 2, warnings print as
    `prog: warning: message`; a closed stdout
    pipe ends it quietly with status 141 (BROKEN_PIPE_STATUS), without a traceback.

    The broken pipe is handled as Python's documentation of SIGPIPE recommends: stdout is flushed here, where the
    error can still be caught, and on a broken pipe pointed at os.devnull so that the flush at interpreter exit
    does not report it again."""
    previous = warnings.formatwarning
    warnings.formatwarning = partial(_one_line_warning, prog)
    try:
        status = body() or 0
        sys.stdout.flush()  # a reader that went away shows here, not at exit
        return status
    except SercacheError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # another pipe (a worker process, a socket): a bug, with its traceback
        _stdout_to_devnull()
        return BROKEN_PIPE_STATUS
    finally:
        warnings.formatwarning = previous


def _one_line_warning(prog: str, message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    """A warning as a command prints it: `prog: warning: message`, without the source line that raised it."""
    return f"{prog}: warning: {message}\n"


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader closed it (poll says POLLERR); True where that cannot be asked."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file descriptor (replaced in-process): not a pipe that broke
        return False
    if not hasattr(select, "poll"):
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _stdout_to_devnull() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
