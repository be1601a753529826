"""bandscope-nb: explore music through source separation in Jupyter.

>>> import bandscope_nb as bn
>>> sep = bn.Separator(model="classical", progress=False)
>>> stems = sep.separate(bn.demo.path())  # doctest: +SKIP
"""

from . import classical, demo, masks, metrics, report
from .audio import Audio, load_audio, save_audio
from .batch import BatchResult, separate_many
from .cache import ResultCache
from .config import SeparationConfig
from .devices import resolve_device
from .errors import (
    AudioError,
    BandscopeError,
    CacheError,
    DeviceError,
    ModelIntegrityError,
    ModelUnavailableError,
    ParameterError,
    ReportError,
    SeparationError,
)
from .masks import oracle_masks
from .models import load_model
from .separator import Separator
from .stems import Stems

__version__ = "0.1.0"


def __getattr__(name: str):
    """``bn.widgets`` is imported on first use (it needs ipywidgets and matplotlib)."""
    if name == "widgets":
        import importlib

        return importlib.import_module(".widgets", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Audio",
    "AudioError",
    "BandscopeError",
    "BatchResult",
    "CacheError",
    "DeviceError",
    "ModelIntegrityError",
    "ModelUnavailableError",
    "ParameterError",
    "ReportError",
    "ResultCache",
    "SeparationConfig",
    "SeparationError",
    "Separator",
    "Stems",
    "classical",
    "demo",
    "load_audio",
    "load_model",
    "masks",
    "metrics",
    "oracle_masks",
    "report",
    "resolve_device",
    "save_audio",
    "separate_many",
    "widgets",
]
