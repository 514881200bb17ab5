"""Stage 1: run frozen encoders once over a corpus and write frame-level features to a store."""
