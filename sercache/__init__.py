"""sercache: cache frozen-encoder features once, train small SER heads from the cache many times."""

__version__ = "0.1.0"
