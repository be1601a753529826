"""OpenVINO as a runner of an exported ONNX graph (``backend="openvino"``).

:class:`OpenVinoSession` is called like an ONNX Runtime session, so :mod:`.onnx_backend`
exports, checks, stores and uses graphs the same way for both. OpenVINO compiles the graph for
the CPU once per input shape (static shapes ran a full-size HTDemucs chunk 1.09x faster than
one dynamic-shape compilation, side by side; docs/benchmarks.md), in IEEE float32: its CPU
plugin would otherwise pick bfloat16 where the CPU has it.

Needs the ``openvino`` extra: ``pip install 'bandscope-nb[openvino]'`` (checked by
:func:`~.devices.check_backend`).
"""

from __future__ import annotations

import threading
from pathlib import Path

__all__ = ["OpenVinoSession"]

#: Compiled shapes kept per graph (a batch size each; the engine uses one or two per run).
_KEEP_SHAPES = 4


class OpenVinoSession:
    """The ONNX graph at ``path`` run by OpenVINO on the CPU with ``threads`` threads.

    ``run(None, feeds)`` returns the graph's outputs, in its order, as new numpy arrays;
    calls are serialised (one inference request per compiled shape).

    Raises
    ------
    RuntimeError
        OpenVINO cannot read the file as an ONNX graph (raised by OpenVINO; the caller
        exports the graph again).

    Examples
    --------
    >>> import numpy as np, onnx
    >>> from onnx import helper, TensorProto
    >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
    >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])
    >>> graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "relu.onnx"
    >>> onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    >>> OpenVinoSession(path, threads=1).run(None, {"x": np.array([-1.0, 2.0], np.float32)})
    [array([0., 2.], dtype=float32)]
    """

    def __init__(self, path: Path, threads: int):
        import openvino as ov
        from openvino.frontend import FrontEndManager

        # the ONNX reader alone: Core.read_model tries every format and logs each failure
        frontend = FrontEndManager().load_by_framework("onnx")
        self._model = frontend.convert(frontend.load(str(path)))
        self._inputs = {port.get_any_name() for port in self._model.inputs}
        self._core = ov.Core()
        self._config = {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": int(threads),
        }
        self._requests: dict = {}
        self._lock = threading.Lock()

    def run(self, outputs, feeds: dict) -> list:
        """The graph's outputs for ``feeds`` (name -> float32 array); ``outputs`` must be None
        (all of them, as ONNX Runtime's ``run(None, ...)``)."""
        if outputs is not None:
            raise ValueError("OpenVinoSession.run returns every output; pass None.")
        if set(feeds) != self._inputs:
            raise ValueError(
                f"OpenVinoSession.run needs the inputs {sorted(self._inputs)}; got {sorted(feeds)}."
            )
        shapes = tuple((name, tuple(value.shape)) for name, value in sorted(feeds.items()))
        with self._lock:
            request = self._requests.pop(shapes, None) or self._compile(dict(shapes))
            self._requests[shapes] = request  # now the most recently used
            while len(self._requests) > _KEEP_SHAPES:
                self._requests.pop(next(iter(self._requests)))
            return list(request.infer(feeds, share_inputs=True).to_tuple())

    def _compile(self, shapes: dict):
        model = self._model.clone()
        model.reshape({name: list(shape) for name, shape in shapes.items()})
        return self._core.compile_model(model, "CPU", self._config).create_infer_request()
