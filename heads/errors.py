"""The exception type of head training (and its one subclass, for heads that diverge in a lockstep group).

Every problem with the inputs (labels, cache, configuration) is raised as a HeadError
*before* the first optimiser step, so that a sweep of many configs fails fast instead of
after an hour of training.
"""

from sercache.errors import SercacheError


class HeadError(SercacheError):
    """Bad input or configuration for head training; the message names what is wrong."""


class DivergedError(HeadError):
    """Heads of a lockstep group whose training loss turned non-finite; `finished` maps the position (in the
    group) of every head that trained to the end to its RunResult, so a caller can record them."""

    def __init__(self, message: str, finished: dict):
        super().__init__(message)
        self.finished = finished
