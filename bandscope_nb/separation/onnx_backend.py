"""ONNX Runtime and OpenVINO as CPU backends of HTDemucs models (``backend="onnxruntime"``,
``backend="openvino"``).

The network between HTDemucs' STFTs (:class:`~.htdemucs_split.HTDemucsCore`) is exported to
ONNX once per model and runtime and run by ONNX Runtime or, through
:class:`~.openvino_session.OpenVinoSession`, by OpenVINO; the STFT stays in torch, the mask
and inverse STFT are :func:`~.htdemucs_split.inverse_stft` (see
:func:`~.htdemucs_split.split_forward`), and the engine, cache and players are the same as for
torch. Measured side by side on 2 cores (docs/benchmarks.md), these are the fastest CPU paths.

An exported graph is checked against torch on random input before it is used (at least
:data:`MIN_SNR_DB`) and written atomically, with a record of its sha256 (a later process that
finds other bytes checks it against torch again), under the result cache's ``graphs/`` folder
when a cache is in use (named by a key over the model's weights, its constructor options, the
runtime and the exporting versions), else only into a temporary folder. Sessions are kept per
process.

Needs the ``onnx`` extra (onnxruntime, onnx, onnxscript) or the ``openvino`` extra (openvino,
onnx, onnxscript), checked by :func:`~.devices.check_backend`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from ..errors import ParameterError, SeparationError
from ..files import atomic_path

__all__ = ["MIN_SNR_DB", "OnnxHTDemucs", "check_model", "onnx_parts"]

#: Least agreement, in dB SNR, between a runtime's and torch's core on a check input.
MIN_SNR_DB = 60.0
#: Bumped whenever :class:`~.htdemucs_split.HTDemucsCore` or the export changes: graphs made
#: by an earlier one are not reused.
GRAPH_FORMAT = 3
#: ONNX opset of the export per runtime: 23 has an ``Attention`` operator, which
#: :func:`_flash_attention` hands to ONNX Runtime's own multi-head attention; OpenVINO fuses
#: opset 18's plain attention itself and ran opset 23's ``Attention`` 3 % slower.
OPSETS = {"onnxruntime": 23, "openvino": 18}
#: How messages name each runtime.
LABELS = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
#: Sessions kept per process, by graph key (the most recent few).
_SESSIONS: dict[str, object] = {}
_KEEP = 4
_LOCK = threading.Lock()


def check_model(loaded, runtime: str = "onnxruntime") -> None:
    """Check that every part of ``loaded`` (a :class:`~.loaded.LoadedModel`) is an HTDemucs,
    the one architecture these backends export (``runtime`` names the backend in messages).

    Raises
    ------
    ParameterError
        Naming the model and the part's class.
    """
    from demucs.htdemucs import HTDemucs

    for model, _ in loaded.parts:
        if not isinstance(model, HTDemucs):
            raise ParameterError(
                f"backend={runtime!r} runs HTDemucs models; {loaded.name} is "
                f"{type(model).__name__}. Use backend='torch'."
            )
        if not model.use_train_segment:  # its input length varies: not one exported graph
            raise ParameterError(
                f"backend={runtime!r} runs HTDemucs models that pad every chunk to their "
                f"training length; {loaded.name} has use_train_segment=False. Use "
                "backend='torch'."
            )


class OnnxHTDemucs:
    """An HTDemucs whose network runs from its exported graph (an ONNX Runtime session or an
    :class:`~.openvino_session.OpenVinoSession`): called like the model (evaluation mode),
    with its ``samplerate``, ``segment``, ``sources`` and ``audio_channels``.

    ``wrapped`` is the torch model (its STFT runs in torch, the mask and inverse STFT in
    :func:`~.htdemucs_split.inverse_stft` where that computes demucs' own: complex-as-channels
    output and demucs' own methods; the engine sizes chunks by it).
    """

    def __init__(self, model, session):
        self.wrapped, self.session = model, session
        for name in ("samplerate", "segment", "sources", "audio_channels"):
            setattr(self, name, getattr(model, name))

    def valid_length(self, length: int) -> int:
        return self.wrapped.valid_length(length)

    def __call__(self, mix):
        from .htdemucs_split import split_forward

        return split_forward(self.wrapped, self._core, mix, fast_istft=True)

    def _core(self, mix, mag):
        import torch

        x, xt = self.session.run(
            None, {"mix": np.ascontiguousarray(mix.numpy()), "mag": np.ascontiguousarray(mag)}
        )
        return torch.from_numpy(x), torch.from_numpy(xt)


def onnx_parts(loaded, folder: Path | None, runtime: str = "onnxruntime") -> list:
    """``loaded``'s parts with each HTDemucs run by ``runtime`` (``"onnxruntime"`` or
    ``"openvino"``; exported, checked and written to ``folder`` on first use; ``folder=None``
    keeps no file).

    Raises
    ------
    ParameterError
        A part is not an HTDemucs.
    SeparationError
        The runtime's output disagrees with torch's (below :data:`MIN_SNR_DB`).
    """
    check_model(loaded, runtime)
    parts = []
    for index, (model, weights) in enumerate(loaded.parts):
        key = _graph_key(model, loaded.identity, index, runtime)
        with _LOCK:
            session = _SESSIONS.get(key)
            if session is None:
                session = _load_or_export(model, key, loaded.name, folder, runtime)
                while len(_SESSIONS) >= _KEEP:
                    _SESSIONS.pop(next(iter(_SESSIONS)))
                _SESSIONS[key] = session
        parts.append((OnnxHTDemucs(model, session), weights))
    return parts


def _graph_key(model, identity: str, index: int, runtime: str) -> str:
    import importlib

    import demucs
    import onnx
    import onnxscript
    import torch

    from .cache import cache_key

    return cache_key(
        graph=GRAPH_FORMAT,
        model=identity,
        # constructor options that change the forward pass but no weight (freq_emb's scale)
        init=getattr(model, "_init_args_kwargs", None),
        part=index,
        # the runtime and its version (ONNX Runtime's keys as before OpenVINO came)
        **{runtime: importlib.import_module(runtime).__version__},
        torch=torch.__version__,
        demucs=demucs.__version__,
        onnx=onnx.__version__,
        onnxscript=onnxscript.__version__,
    )


def _session(path: Path, runtime: str):
    """A session of ``runtime`` for the graph at ``path``: ``run(None, feeds)`` gives its
    outputs."""
    import torch

    if runtime == "openvino":
        from .openvino_session import OpenVinoSession

        return OpenVinoSession(path, threads=torch.get_num_threads())
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()  # as torch would use
    # no busy-waiting between runs: the engine's reader and writer threads share the cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # no memory plan for all intermediate tensors at once: 0.8 GB less at the peak of a
    # full-size HTDemucs (1.8 GB in all, against 2.6), no slower (docs/benchmarks.md)
    options.enable_mem_pattern = False
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _load_or_export(model, key: str, name: str, folder: Path | None, runtime: str):
    """A ``runtime`` session for ``model``'s core: from ``folder/<key>.onnx`` when it is there
    and loads, else exported (into ``folder`` or a temporary folder) and checked. A stored
    graph whose bytes match the digest written beside it when it passed the check is trusted;
    any other (no record, another digest) is checked against torch again first."""
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="bandscope-onnx-") as tmp:
            return _export_checked(model, name, Path(tmp) / f"{key}.onnx", runtime)
    path = folder / f"{key}.onnx"
    if path.is_file() and not path.is_symlink():
        try:
            session = _session(path, runtime)
            if _passed(path):
                with contextlib.suppress(OSError):  # its last use, for the cache's size cap
                    os.utime(path)
                return session
            snr = _agreement(model, session, *_example(model))
        except Exception as exc:  # a damaged or foreign file (other inputs): made again below
            problem = f"does not load ({_plain(exc)})"
        else:
            if snr >= MIN_SNR_DB:
                _record(path, snr)
                return session
            problem = f"disagrees with torch ({snr:.1f} dB SNR)"
        warnings.warn(f"The exported graph {path} {problem}; exporting it again.", stacklevel=4)
    return _export_checked(model, name, path, runtime)


def _export_checked(model, name: str, path: Path, runtime: str):
    """Export ``model``'s core to ``path`` through a temporary file beside it, renamed into
    place only once ``runtime`` loads it and agrees with torch on :func:`_example`'s input
    (then recorded by :func:`_record`); a graph that fails is deleted. A failed write is an
    :class:`OSError`."""
    mix, mag = _example(model)
    with atomic_path(path) as tmp:
        try:
            _export(model, mix, mag, tmp, runtime=runtime)
            session = _session(tmp, runtime)
            snr = _agreement(model, session, mix, mag)  # OpenVINO compiles at the first run
        except OSError:
            raise
        except Exception as exc:
            raise SeparationError(
                f"Could not export {name} to ONNX and run it in {LABELS[runtime]} "
                f"({type(exc).__name__}: {_plain(exc)}); use backend='torch'."
            ) from exc
        if snr < MIN_SNR_DB:
            raise SeparationError(
                f"{LABELS[runtime]}'s result for {name} differs from torch's ({snr:.1f} dB SNR, "
                f"below {MIN_SNR_DB:g} dB); use backend='torch'."
            )
    _record(path, snr)
    return session


def _record(path: Path, snr: float) -> None:
    """Write ``<key>.json`` beside a graph that passed the check: its sha256 and SNR."""
    from ..digests import sha256_file

    record = {"sha256": sha256_file(path), "snr_db": snr}
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(record))


def _passed(path: Path) -> bool:
    """Whether the graph at ``path`` is the one :func:`_record` wrote a digest for."""
    from ..digests import sha256_file

    try:
        record = json.loads(path.with_suffix(".json").read_text())
        return record["sha256"] == sha256_file(path)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _plain(exc: BaseException) -> str:
    """An exception's message without terminal colour codes (torch's exporter adds them)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(exc))


def _example(model):
    """A seeded check input at the training length, two rows (a batch of one would fix the
    graph's batch size at 1)."""
    import torch

    frames = int(model.segment * model.samplerate)
    generator = torch.Generator().manual_seed(0)
    mix = 0.1 * torch.randn(2, model.audio_channels, frames, generator=generator)
    with torch.inference_mode():
        mag = model._magnitude(model._spec(mix)).contiguous()
    return mix, mag


def _export(model, mix, mag, path: Path, *, runtime: str) -> None:
    """torch's ONNX exporter on the core at ``runtime``'s opset, with its progress lines and
    warnings kept quiet, then rewritten for the runtime (:func:`_rewrite`)."""
    import torch

    from .htdemucs_split import HTDemucsCore

    batch = torch.export.Dim("batch", min=1, max=1024)
    quiet = io.StringIO()
    with (
        contextlib.redirect_stdout(quiet),
        contextlib.redirect_stderr(quiet),
        warnings.catch_warnings(),
        _logging_off(),
        torch.no_grad(),
    ):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            HTDemucsCore(model).eval(),
            (mix, mag),
            str(path),
            dynamo=True,
            verbose=False,
            input_names=["mix", "mag"],
            output_names=["x", "xt"],
            dynamic_shapes=({0: batch}, {0: batch}),
            external_data=False,
            opset_version=OPSETS[runtime],
        )
    _rewrite(path, runtime)


def _rewrite(path: Path, runtime: str) -> None:
    """Rewrite the exported graph at ``path`` for ``runtime``'s CPU kernels: for ONNX
    Runtime :func:`_flash_attention` and :func:`_layer_norms`, for OpenVINO
    :func:`_glu_convs` (each measured side by side, docs/benchmarks.md)."""
    import onnx

    graph = onnx.load(str(path))
    shapes = {
        info.name: [d.dim_value if d.HasField("dim_value") else None for d in _dims(info)]
        for info in [*graph.graph.value_info, *graph.graph.input]
    }
    if runtime == "onnxruntime":
        done = _flash_attention(graph, shapes) + _layer_norms(graph, shapes)
    else:
        done = _glu_convs(graph)
    if done:
        onnx.save(graph, str(path))


def _flash_attention(graph, shapes: dict) -> int:
    """Each plain ONNX ``Attention`` over 4-D ``(batch, heads, length, size)`` tensors in
    ``graph`` becomes ONNX Runtime's ``com.microsoft.MultiHeadAttention``, whose CPU kernel is
    a flash attention (the plain one multiplies out every score matrix: about 5 % of a
    full-size HTDemucs chunk, measured side by side). Returns how many."""
    import onnx
    from onnx import helper

    nodes, done = [], 0
    for node in graph.graph.node:
        attrs = _attributes(node)
        plain = not attrs.get("is_causal") and not attrs.get("softcap")
        plain = plain and not attrs.get("qk_matmul_output_mode")
        dims = [shapes.get(name) for name in node.input]
        if (
            node.op_type != "Attention"
            or len(node.input) != 3
            or len(node.output) != 1
            or not plain
            or any(d is None or len(d) != 4 for d in dims)
            or not dims[0][1]
            or len({d[1] for d in dims}) != 1  # as many key and value heads as query heads
        ):
            nodes.append(node)
            continue
        heads, name = dims[0][1], f"bandscope_mha_{done}"
        graph.graph.initializer.extend(
            [
                helper.make_tensor(f"{name}_3d", onnx.TensorProto.INT64, [3], [0, 0, -1]),
                helper.make_tensor(f"{name}_4d", onnx.TensorProto.INT64, [4], [0, 0, heads, -1]),
            ]
        )
        flat = []
        for i, tensor in enumerate(node.input):  # (B, N, S, H) -> (B, S, N * H)
            nodes.append(helper.make_node("Transpose", [tensor], [f"{name}_t{i}"], perm=BNSH))
            nodes.append(
                helper.make_node("Reshape", [f"{name}_t{i}", f"{name}_3d"], [f"{name}_{i}"])
            )
            flat.append(f"{name}_{i}")
        scale = {"scale": attrs["scale"]} if "scale" in attrs else {}
        nodes += [
            helper.make_node(
                "MultiHeadAttention", flat, [f"{name}_out"], domain="com.microsoft",
                num_heads=heads, **scale,
            ),
            helper.make_node("Reshape", [f"{name}_out", f"{name}_4d"], [f"{name}_o4"]),
            helper.make_node("Transpose", [f"{name}_o4"], [node.output[0]], perm=BNSH),
        ]  # fmt: skip
        done += 1
    if done:
        del graph.graph.node[:]
        graph.graph.node.extend(nodes)
        if not any(o.domain == "com.microsoft" for o in graph.opset_import):
            graph.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return done


def _layer_norms(graph, shapes: dict) -> int:
    """Each ``GroupNormalization`` with one group over ``(batch, channels, ...)`` in ``graph``
    becomes a ``LayerNormalization`` over all axes after the batch, with the per-channel
    scale and bias reshaped to broadcast over them (the same arithmetic: one group normalises
    all of a row). ONNX Runtime has no kernel of its own for ``GroupNormalization`` and runs
    its definition, a dozen passes over the tensor; HTDemucs has one in each DConv layer and
    transformer layer (2-4 % of a full-size chunk, measured side by side). Returns how
    many."""
    import onnx
    from onnx import helper

    nodes, done = [], 0
    for node in graph.graph.node:
        rank, attrs = len(shapes.get(node.input[0]) or ()), _attributes(node)
        if (
            node.op_type != "GroupNormalization"
            or attrs.get("num_groups") != 1
            or rank < 3
            or len(node.input) != 3
        ):
            nodes.append(node)
            continue
        name = f"bandscope_ln_{done}"
        shape = [-1] + [1] * (rank - 2)  # (C,) -> (C, 1, ...)
        graph.graph.initializer.append(
            helper.make_tensor(f"{name}_shape", onnx.TensorProto.INT64, [len(shape)], shape)
        )
        nodes += [
            helper.make_node("Reshape", [node.input[1], f"{name}_shape"], [f"{name}_scale"]),
            helper.make_node("Reshape", [node.input[2], f"{name}_shape"], [f"{name}_bias"]),
            helper.make_node(
                "LayerNormalization", [node.input[0], f"{name}_scale", f"{name}_bias"],
                list(node.output), axis=1, epsilon=attrs.get("epsilon", 1e-5),
            ),
        ]  # fmt: skip
        done += 1
    if done:
        del graph.graph.node[:]
        graph.graph.node.extend(nodes)
    return done


def _glu_convs(graph) -> int:
    """Each ``Conv`` whose output only a ``Split`` into two halves along the channels reads
    (a GLU after HTDemucs' encoder and decoder rewrite convolutions) becomes two ``Conv``s,
    one per half of its weights and bias: the same arithmetic per output channel, without a
    pass that copies the tensor apart (OpenVINO runs ``Split`` with a reference kernel: 2 %
    of a full-size chunk, measured side by side). Grouped convolutions (whose halves would pair
    other channels) and weights shared with another node are left alone. Returns how many."""
    from onnx import helper, numpy_helper

    nodes = list(graph.graph.node)  # the same node objects throughout (their ids are keys)
    producer = {out: node for node in nodes for out in node.output}
    uses: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    initializers = {tensor.name: tensor for tensor in graph.graph.initializer}
    outputs = {info.name for info in graph.graph.output}
    halves, dropped = {}, set()
    for split in nodes:
        conv = producer.get(split.input[0]) if split.input else None
        if (
            split.op_type != "Split"
            or len(split.input) != 1
            or len(split.output) != 2
            or _attributes(split) != {"axis": 1, "num_outputs": 2}
            or conv is None
            or conv.op_type != "Conv"
            or len(conv.input) != 3
            or uses[split.input[0]] != 1
            or split.input[0] in outputs
            or not all(name in initializers and uses[name] == 1 for name in conv.input[1:])
        ):
            continue
        weight, bias = (numpy_helper.to_array(initializers[n]) for n in conv.input[1:])
        grouped = _attributes(conv).get("group", 1) != 1  # halves would regroup the channels
        if grouped or weight.shape[0] % 2 or bias.shape != weight.shape[:1]:
            continue
        half, pair = weight.shape[0] // 2, []
        for k, out in enumerate(split.output):
            names = [f"{conv.input[1]}_half{k}", f"{conv.input[2]}_half{k}"]
            for name, array in zip(names, (weight, bias), strict=True):
                graph.graph.initializer.append(
                    numpy_helper.from_array(array[k * half : (k + 1) * half], name)
                )
            pair.append(
                helper.make_node(
                    "Conv", [conv.input[0], *names], [out], name=f"{conv.name}_half{k}",
                    **_attributes(conv),
                )
            )  # fmt: skip
        for name in conv.input[1:]:
            graph.graph.initializer.remove(initializers[name])
        halves[id(conv)], dropped = pair, dropped | {id(split)}
    if halves:
        kept = [
            new for node in nodes if id(node) not in dropped for new in halves.get(id(node), [node])
        ]
        del graph.graph.node[:]
        graph.graph.node.extend(kept)
    return len(halves)


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


#: Swaps the heads and length axes (its own inverse).
BNSH = [0, 2, 1, 3]


def _dims(info):
    return info.type.tensor_type.shape.dim


@contextlib.contextmanager
def _logging_off():
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _agreement(model, session, mix, mag) -> float:
    """SNR in dB of a session's core output against torch's, on the first row of ``mix``
    (one chunk: the check costs one forward pass in each)."""
    import torch

    from .benchmark import snr_db
    from .htdemucs_split import HTDemucsCore

    mix, mag = mix[:1], mag[:1]
    with torch.inference_mode():
        expected = [t.numpy() for t in HTDemucsCore(model)(mix, mag)]
    got = session.run(None, {"mix": mix.numpy(), "mag": mag.numpy()})
    return snr_db(*(np.concatenate([a.ravel() for a in arrays]) for arrays in (expected, got)))
