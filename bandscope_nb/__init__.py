"""bandscope-nb: explore music through source separation in Jupyter.

>>> import bandscope_nb as bn
>>> sep = bn.Separator(model="classical", progress=False)
>>> stems = sep.separate(bn.demo.path())  # doctest: +SKIP
"""

from . import datasets, demo
from ._version import __version__
from .audio import Audio, load_audio, save_audio
from .dsp import classical, masks, metrics
from .dsp.ensemble import ensemble
from .dsp.masks import oracle_masks
from .errors import (
    AudioError,
    BandscopeError,
    BandscopeWarning,
    CacheError,
    DeviceError,
    MissingDependencyError,
    ModelFallbackWarning,
    ModelIntegrityError,
    ModelUnavailableError,
    ParameterError,
    ReportError,
    SeparationError,
)
from .evaluation import Comparison, compare, sweep
from .notebook import report
from .separation.batch import BatchResult, separate_many
from .separation.cache import ResultCache
from .separation.config import SeparationConfig
from .separation.devices import resolve_device
from .separation.models import load_model
from .separation.separator import Separator
from .stems import Stems


def __getattr__(name: str):
    """``bn.widgets`` (ipywidgets, matplotlib) and ``bn.training`` (torch) are imported on
    first use."""
    if name in ("widgets", "training"):
        import importlib

        where = ".notebook.widgets" if name == "widgets" else ".training"
        return importlib.import_module(where, __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Audio",
    "AudioError",
    "BandscopeError",
    "BandscopeWarning",
    "BatchResult",
    "CacheError",
    "Comparison",
    "DeviceError",
    "MissingDependencyError",
    "ModelFallbackWarning",
    "ModelIntegrityError",
    "ModelUnavailableError",
    "ParameterError",
    "ReportError",
    "ResultCache",
    "SeparationConfig",
    "SeparationError",
    "Separator",
    "Stems",
    "__version__",
    "classical",
    "compare",
    "datasets",
    "demo",
    "ensemble",
    "load_audio",
    "load_model",
    "masks",
    "metrics",
    "oracle_masks",
    "report",
    "resolve_device",
    "save_audio",
    "separate_many",
    "sweep",
    "widgets",
]
