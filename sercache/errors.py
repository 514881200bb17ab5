"""The root of sercache's input errors, and the one wrapper that turns them into `command: error: ...`.

Every stage raises a subclass of SercacheError (CacheError, HeadError, AudioError, ManifestError, ...)
when what the user gave cannot work: a missing file, a bad option value, a store without the asked
feature set. Such an error is the user's to fix, so a command prints its message on one line and
exits with status 2. Anything else is a bug in sercache and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Callable


class SercacheError(Exception):
    """Bad input or configuration; the message names what is wrong and, where it can, how to fix it."""


def run_command(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command's body: input errors print `prog: error: message` and give exit status 2."""
    try:
        return body() or 0
    except SercacheError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
