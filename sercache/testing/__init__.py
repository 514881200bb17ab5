"""Fixtures for tests and benchmarks: synthetic caches and label files in MSP-Podcast's shapes (not used by the
pipeline itself)."""

from .synthetic import (
                        InMemoryFeatureSet,
                        SyntheticCorpus,
                        in_memory_pool,
                        make_synthetic_corpus,
                        write_audio_feature_set,
                        write_iemocap_corpus,
)

__all__ = ["InMemoryFeatureSet", "SyntheticCorpus", "in_memory_pool", "make_synthetic_corpus",
           "write_audio_feature_set", "write_iemocap_corpus"]
