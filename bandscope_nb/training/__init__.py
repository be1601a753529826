"""Train your own separator: a small mask network (:class:`MaskNet`) fitted to multitracks
within a time budget on a laptop CPU (:func:`fit`), then run by the Separator like any model.

>>> import bandscope_nb as bn
>>> net = bn.training.MaskNet()
>>> songs = bn.datasets.synth_multitracks(200, seconds=10.0)  # doctest: +SKIP
>>> result = bn.training.fit(net, songs, minutes=10, out="my-model")  # doctest: +SKIP
>>> bn.Separator(model="my-model/masknet.safetensors")  # doctest: +SKIP
"""

from ..separation.masknet import MaskNet
from .fit import FitResult, fit

__all__ = ["FitResult", "MaskNet", "fit"]
