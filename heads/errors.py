"""The one exception type of head training.

Every problem with the inputs (labels, cache, configuration) is raised as a HeadError
*before* the first optimiser step, so that a sweep of many configs fails fast instead of
after an hour of training.
"""


class HeadError(ValueError):
    """Bad input or configuration for head training; the message names what is wrong."""


def run_command(prog: str, body) -> int:
    """Run a command's body; input errors (ours or the cache layer's) print one line and exit 2, no traceback."""
    import sys

    from sercache.cache import CacheError

    try:
        return body()
    except (HeadError, CacheError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
