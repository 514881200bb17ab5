"""The feature store shared by extraction (writes) and head training (reads).

See cache_schema.md for the on-disk format; this package is one reader/writer of it.
"""

from .encoding import Float16OverflowError
from .layout import SCHEMA_VERSION, CacheError
from .store import FeatureSet, PackedFeatures, Store, VerifyReport, open_store
from .writer import FeatureSetWriter, StorageConfig, UtteranceRecord

__all__ = [
    "SCHEMA_VERSION", "CacheError", "FeatureSet", "FeatureSetWriter", "Float16OverflowError",
    "PackedFeatures", "StorageConfig", "Store", "UtteranceRecord", "VerifyReport", "open_store",
]
