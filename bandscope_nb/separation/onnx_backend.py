"""ONNX Runtime as the CPU backend of HTDemucs models (``backend="onnxruntime"``).

The network between HTDemucs' STFTs (:class:`~.htdemucs_split.HTDemucsCore`) is exported to
ONNX once per model and run by ONNX Runtime; the STFT, mask and inverse STFT stay in torch
(:func:`~.htdemucs_split.split_forward`), and the engine, cache and players are the same as for
torch. Measured side by side on 2 cores (docs/benchmarks.md), this is the fastest CPU path
(1.24-1.32x ``apply_model`` against 1.07-1.26x with torch, at 81 dB from it).

An exported graph is checked against torch on random input before it is used (at least
:data:`MIN_SNR_DB`) and written atomically, with a record of its sha256 (a later process that
finds other bytes checks it against torch again), under the result cache's ``graphs/`` folder
when a cache is in use (named by a key over the model's weights, its constructor options and
the exporting versions), else only into a temporary folder. Sessions are kept per process.

Needs the ``onnx`` extra: ``pip install 'bandscope-nb[onnx]'`` (onnxruntime, onnx, onnxscript;
checked by :func:`~.devices.check_backend`).
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

#: Least agreement, in dB SNR, between ONNX Runtime's and torch's core on a check input.
MIN_SNR_DB = 60.0
#: Bumped whenever :class:`~.htdemucs_split.HTDemucsCore` or the export changes: graphs made
#: by an earlier one are not reused.
GRAPH_FORMAT = 3
#: ONNX opset of the export: 23 has an ``Attention`` operator, which :func:`_flash_attention`
#: hands to ONNX Runtime's own multi-head attention.
OPSET = 23
#: Sessions kept per process, by graph key (the most recent few).
_SESSIONS: dict[str, object] = {}
_KEEP = 4
_LOCK = threading.Lock()


def check_model(loaded) -> None:
    """Check that every part of ``loaded`` (a :class:`~.loaded.LoadedModel`) is an HTDemucs,
    the one architecture this backend exports.

    Raises
    ------
    ParameterError
        Naming the model and the part's class.
    """
    from demucs.htdemucs import HTDemucs

    for model, _ in loaded.parts:
        if not isinstance(model, HTDemucs):
            raise ParameterError(
                f"backend='onnxruntime' runs HTDemucs models; {loaded.name} is "
                f"{type(model).__name__}. Use backend='torch'."
            )
        if not model.use_train_segment:  # its input length varies: not one exported graph
            raise ParameterError(
                f"backend='onnxruntime' runs HTDemucs models that pad every chunk to their "
                f"training length; {loaded.name} has use_train_segment=False. Use "
                "backend='torch'."
            )


class OnnxHTDemucs:
    """An HTDemucs whose network runs in ONNX Runtime: called like the model (evaluation
    mode), with its ``samplerate``, ``segment``, ``sources`` and ``audio_channels``.

    ``wrapped`` is the torch model (its STFTs run in torch; the engine sizes chunks by it).
    """

    def __init__(self, model, session):
        self.wrapped, self.session = model, session
        for name in ("samplerate", "segment", "sources", "audio_channels"):
            setattr(self, name, getattr(model, name))

    def valid_length(self, length: int) -> int:
        return self.wrapped.valid_length(length)

    def __call__(self, mix):
        from .htdemucs_split import split_forward

        return split_forward(self.wrapped, self._core, mix)

    def _core(self, mix, mag):
        import torch

        x, xt = self.session.run(
            None, {"mix": np.ascontiguousarray(mix.numpy()), "mag": np.ascontiguousarray(mag)}
        )
        return torch.from_numpy(x), torch.from_numpy(xt)


def onnx_parts(loaded, folder: Path | None) -> list:
    """``loaded``'s parts with each HTDemucs run by ONNX Runtime (exported, checked and
    written to ``folder`` on first use; ``folder=None`` keeps no file).

    Raises
    ------
    ParameterError
        A part is not an HTDemucs.
    SeparationError
        ONNX Runtime's output disagrees with torch's (below :data:`MIN_SNR_DB`).
    """
    check_model(loaded)
    parts = []
    for index, (model, weights) in enumerate(loaded.parts):
        key = _graph_key(model, loaded.identity, index)
        with _LOCK:
            session = _SESSIONS.get(key)
            if session is None:
                session = _load_or_export(model, key, loaded.name, folder)
                while len(_SESSIONS) >= _KEEP:
                    _SESSIONS.pop(next(iter(_SESSIONS)))
                _SESSIONS[key] = session
        parts.append((OnnxHTDemucs(model, session), weights))
    return parts


def _graph_key(model, identity: str, index: int) -> str:
    import demucs
    import onnx
    import onnxruntime
    import onnxscript
    import torch

    from .cache import cache_key

    return cache_key(
        graph=GRAPH_FORMAT,
        model=identity,
        # constructor options that change the forward pass but no weight (freq_emb's scale)
        init=getattr(model, "_init_args_kwargs", None),
        part=index,
        onnxruntime=onnxruntime.__version__,
        torch=torch.__version__,
        demucs=demucs.__version__,
        onnx=onnx.__version__,
        onnxscript=onnxscript.__version__,
    )


def _session(path: Path):
    import onnxruntime as ort
    import torch

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


def _load_or_export(model, key: str, name: str, folder: Path | None):
    """A session for ``model``'s core: from ``folder/<key>.onnx`` when it is there and loads,
    else exported (into ``folder`` or a temporary folder) and checked. A stored graph whose
    bytes match the digest written beside it when it passed the check is trusted; any other
    (no record, another digest) is checked against torch again first."""
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="bandscope-onnx-") as tmp:
            return _export_checked(model, name, Path(tmp) / f"{key}.onnx")
    path = folder / f"{key}.onnx"
    if path.is_file() and not path.is_symlink():
        try:
            session = _session(path)
        except Exception as exc:  # a damaged file: made again below
            problem = f"does not load ({_plain(exc)})"
        else:
            if _passed(path):
                with contextlib.suppress(OSError):  # its last use, for the cache's size cap
                    os.utime(path)
                return session
            snr = _agreement(model, session, *_example(model))
            if snr >= MIN_SNR_DB:
                _record(path, snr)
                return session
            problem = f"disagrees with torch ({snr:.1f} dB SNR)"
        warnings.warn(f"The exported graph {path} {problem}; exporting it again.", stacklevel=4)
    return _export_checked(model, name, path)


def _export_checked(model, name: str, path: Path):
    """Export ``model``'s core to ``path`` through a temporary file beside it, renamed into
    place only once ONNX Runtime loads it and agrees with torch on :func:`_example`'s input
    (then recorded by :func:`_record`); a graph that fails is deleted. A failed write is an
    :class:`OSError`."""
    mix, mag = _example(model)
    with atomic_path(path) as tmp:
        try:
            _export(model, mix, mag, tmp)
            session = _session(tmp)
        except OSError:
            raise
        except Exception as exc:
            raise SeparationError(
                f"Could not export {name} to ONNX ({type(exc).__name__}: {_plain(exc)}); use "
                "backend='torch'."
            ) from exc
        snr = _agreement(model, session, mix, mag)
        if snr < MIN_SNR_DB:
            raise SeparationError(
                f"ONNX Runtime's result for {name} differs from torch's ({snr:.1f} dB SNR, "
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


def _export(model, mix, mag, path: Path) -> None:
    """torch's ONNX exporter on the core, with its progress lines and warnings kept quiet."""
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
            opset_version=OPSET,
        )
    _for_ort(path)


def _for_ort(path: Path) -> None:
    """Rewrite the exported graph at ``path`` for ONNX Runtime's CPU kernels:
    :func:`_flash_attention` and :func:`_layer_norms`."""
    import onnx

    graph = onnx.load(str(path))
    shapes = {
        info.name: [d.dim_value if d.HasField("dim_value") else None for d in _dims(info)]
        for info in [*graph.graph.value_info, *graph.graph.input]
    }
    if _flash_attention(graph, shapes) + _layer_norms(graph, shapes):
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
    """SNR in dB of ONNX Runtime's core output against torch's, on the first row of ``mix``
    (one chunk: the check costs one forward pass in each)."""
    import torch

    from .benchmark import snr_db
    from .htdemucs_split import HTDemucsCore

    mix, mag = mix[:1], mag[:1]
    with torch.inference_mode():
        expected = [t.numpy() for t in HTDemucsCore(model)(mix, mag)]
    got = session.run(None, {"mix": mix.numpy(), "mag": mag.numpy()})
    return snr_db(*(np.concatenate([a.ravel() for a in arrays]) for arrays in (expected, got)))
