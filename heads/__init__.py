"""Stage 2: head training from the cache (see issue tracker)."""
