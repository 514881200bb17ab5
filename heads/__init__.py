"""Stage 2: train small speech-emotion heads from the feature cache, many times, quickly.

Python API::

    from sercache.heads import HeadConfig, train
    result = train(HeadConfig(store="cache/", features=["wavlm-large/L-1"], labels="labels_consensus.csv",
                              out="runs/focal", loss="focal", gamma=2.0, weights="prior"))

The command line (`train-head`) is built from the same dataclass.
"""

from .api import sweep, train
from .errors import HeadError
from .fit.config import HeadConfig
from .inputs.corpora.msp import MSP_CLASSES
from .inputs.labels import ClassSet, LabelTable

__all__ = ["HeadConfig", "HeadError", "MSP_CLASSES", "ClassSet", "LabelTable", "sweep", "train"]
