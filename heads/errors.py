"""The one exception type of head training.

Every problem with the inputs (labels, cache, configuration) is raised as a HeadError
*before* the first optimiser step, so that a sweep of many configs fails fast instead of
after an hour of training.
"""

from sercache.errors import SercacheError


class HeadError(SercacheError):
    """Bad input or configuration for head training; the message names what is wrong."""
