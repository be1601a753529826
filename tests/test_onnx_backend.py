"""backend="onnxruntime" and "openvino": HTDemucs' network exported to ONNX and run by ONNX
Runtime or OpenVINO (CPU).

Real tiny HTDemucs models with random weights, a real export and real ONNX Runtime sessions
and OpenVINO compilations; the reference is the same model run by torch.
"""

from __future__ import annotations

import json
import os

import helpers
import numpy as np
import onnx
import onnxruntime
import pytest
import soundfile as sf
import torch
from helpers import RATE, noise, snr_db, tiny_hdemucs, tiny_htdemucs

import bandscope_nb as bn
from bandscope_nb.cli import main
from bandscope_nb.digests import sha256_file
from bandscope_nb.separation import onnx_backend
from bandscope_nb.separation.devices import check_backend
from bandscope_nb.separation.htdemucs_split import HTDemucsCore, split_forward
from bandscope_nb.separation.modelfiles import save_safetensors
from bandscope_nb.separation.openvino_session import OpenVinoSession

#: The backends that run an exported graph.
GRAPH_BACKENDS = ["onnxruntime", "openvino"]


@pytest.fixture
def runs(monkeypatch):
    """The inputs of every ONNX Runtime or OpenVINO run, recorded (the real run still
    happens), with the runtime's name."""
    seen = []
    for runtime, cls in (
        ("onnxruntime", onnxruntime.InferenceSession),
        ("openvino", OpenVinoSession),
    ):

        def run(self, outputs, feeds, *args, _real=cls.run, _runtime=runtime, **kwargs):
            seen.append({"runtime": _runtime, **{k: v.shape for k, v in feeds.items()}})
            return _real(self, outputs, feeds, *args, **kwargs)

        monkeypatch.setattr(cls, "run", run)
    return seen


@pytest.fixture
def exports(monkeypatch):
    """A fresh process-wide session store, and a count of real exports."""
    monkeypatch.setattr(onnx_backend, "_SESSIONS", {})
    count = []
    real = onnx_backend._export

    def export(*args, **kwargs):
        count.append((args[-1], kwargs["runtime"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(onnx_backend, "_export", export)
    return count


def _conv_splits(graph) -> int:
    """How many ``Split`` nodes of ``graph`` read a ``Conv``'s output."""
    convs = {out for node in graph.graph.node if node.op_type == "Conv" for out in node.output}
    return sum(n.op_type == "Split" and n.input[0] in convs for n in graph.graph.node)


def _separate(model, audio, **options):
    options = {"device": "cpu", "cache": False, "progress": False, **options}
    return np.asarray(bn.Separator(model, **options).separate(audio, RATE).data)


@pytest.mark.parametrize("bottom_channels", [0, 8])
def test_the_split_forward_is_htdemucs_forward_bit_for_bit(bottom_channels):
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(1)
    net = HTDemucs(
        ["a", "b"], channels=4, depth=2, nfft=512, t_layers=1, t_heads=1, dconv_mode=0,
        bottom_channels=bottom_channels, segment=1,
    ).eval()  # fmt: skip
    core = HTDemucsCore(net)
    with torch.inference_mode():
        for frames in (RATE, 30_000):  # the training length, and a short chunk padded to it
            mix = torch.randn(2, 2, frames)
            assert torch.equal(split_forward(net, core, mix), net(mix))


@pytest.mark.parametrize(("nfft", "seconds"), [(512, 1.0), (1024, 0.7), (4096, 2.0)])
def test_the_fast_inverse_stft_is_demucs_mask_and_istft(nfft, seconds):
    from demucs.htdemucs import HTDemucs

    from bandscope_nb.separation.htdemucs_split import inverse_stft

    torch.manual_seed(nfft)
    net = HTDemucs(
        ["a", "b", "c"], channels=4, depth=2, nfft=nfft, t_layers=1, t_heads=1, dconv_mode=0,
        bottom_channels=0, segment=seconds,
    ).eval()  # fmt: skip
    length = int(seconds * RATE)
    with torch.inference_mode():
        z = net._spec(torch.randn(2, 2, length))
        x = torch.randn(2, 3, 4, *z.shape[-2:])
        theirs = net._ispec(net._mask(z, x), length).numpy()
    ours = inverse_stft(x.numpy(), net.hop_length, length)
    assert ours.shape == theirs.shape == (2, 3, 2, length) and ours.dtype == np.float32
    assert snr_db(theirs, ours) >= 120
    with pytest.raises(ValueError, match="bins for hop"):
        inverse_stft(x.numpy(), net.hop_length * 2, length)


def test_split_forward_keeps_demucs_inverse_stft_for_masking_models():
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(3)
    net = HTDemucs(
        ["a", "b"], channels=4, depth=2, nfft=512, t_layers=1, t_heads=1, dconv_mode=0,
        bottom_channels=0, segment=1, cac=False,
    ).eval()  # fmt: skip
    mix = torch.randn(1, 2, RATE)
    with torch.inference_mode():  # cac=False masks the mixture: the fast path does not apply
        assert torch.equal(split_forward(net, HTDemucsCore(net), mix, fast_istft=True), net(mix))
        cac = tiny_htdemucs()
        fast = split_forward(cac, HTDemucsCore(cac), mix, fast_istft=True)
        assert not torch.equal(fast, cac(mix)) and snr_db(cac(mix).numpy(), fast.numpy()) > 100


def test_a_subclass_with_its_own_inverse_stft_keeps_it(runs):
    from demucs.htdemucs import HTDemucs

    class Quieter(HTDemucs):
        def _ispec(self, z, length=None, scale=0):
            return 0.5 * super()._ispec(z, length, scale)

    torch.manual_seed(5)
    model = Quieter(
        list(helpers.SOURCES), channels=4, depth=2, nfft=512, t_layers=1, t_heads=1,
        dconv_mode=0, bottom_channels=0, segment=1,
    ).eval()  # fmt: skip
    audio = noise(1.0)
    got = _separate(model, audio, backend="openvino")
    assert runs and snr_db(_separate(model, audio), got) >= onnx_backend.MIN_SNR_DB


def _glu_graph(group: int):
    """Conv (4 -> 8 channels, ``group`` groups) -> Split in two -> a * sigmoid(b)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(group)
    weight = rng.standard_normal((8, 4 // group, 3)).astype(np.float32)
    inits = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["y"], group=group, pads=[1, 1]),
        helper.make_node("Split", ["y"], ["a", "g"], axis=1, num_outputs=2),
        helper.make_node("Sigmoid", ["g"], ["s"]),
        helper.make_node("Mul", ["a", "s"], ["out"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 16])
    graph = helper.make_graph(nodes, "glu", [x], [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("group", [1, 2])
def test_glu_convolutions_are_split_only_where_the_arithmetic_stays(group):
    model = _glu_graph(group)
    x = np.random.default_rng(0).standard_normal((1, 4, 16)).astype(np.float32)

    def run(m):
        session = onnxruntime.InferenceSession(m.SerializeToString())
        return session.run(None, {"x": x})[0]

    before = run(model)
    done = onnx_backend._glu_convs(model)
    ops = [node.op_type for node in model.graph.node]
    if group == 1:  # two convolutions, no split, the same numbers
        assert done == 1 and ops.count("Conv") == 2 and "Split" not in ops
        assert {t.name for t in model.graph.initializer} == {
            "w_half0",
            "b_half0",
            "w_half1",
            "b_half1",
        }
    else:  # halving a grouped convolution would pair other channels: left alone
        assert done == 0 and ops.count("Conv") == 1 and "Split" in ops
    np.testing.assert_allclose(run(model), before, rtol=1e-5, atol=1e-6)


def test_an_openvino_session_wants_every_input_by_name(tmp_path):
    path = tmp_path / "glu.onnx"
    onnx.save(_glu_graph(1), str(path))
    session = OpenVinoSession(path, threads=1)
    x = np.ones((1, 4, 16), np.float32)
    assert session.run(None, {"x": x})[0].shape == (1, 4, 16)
    with pytest.raises(ValueError, match=r"needs the inputs \['x'\]; got \['y'\]"):
        session.run(None, {"y": x})
    with pytest.raises(ValueError, match="pass None"):
        session.run(["out"], {"x": x})


@pytest.mark.parametrize("backend", GRAPH_BACKENDS)
def test_a_foreign_graph_under_the_key_is_exported_again(backend, tmp_path, exports):
    model, root = tiny_htdemucs(), tmp_path / "c"
    _separate(model, noise(1.0), backend=backend, cache=root)
    (graph,) = (root / "graphs").glob("*.onnx")
    onnx.save(_glu_graph(1), str(graph))  # a readable graph with other inputs, no record
    graph.with_suffix(".json").unlink()
    onnx_backend._SESSIONS.clear()
    audio = noise(1.0, seed=1)
    with pytest.warns(UserWarning, match="does not load"):
        got = _separate(model, audio, backend=backend, cache=root)
    assert len(exports) == 2 and snr_db(_separate(model, audio), got) >= onnx_backend.MIN_SNR_DB


@pytest.mark.parametrize(
    ("backend", "options"),
    [
        ("onnxruntime", {}),
        ("onnxruntime", {"segment": 0.5, "batch_size": 3}),
        ("onnxruntime", {"shifts": 1, "overlap": 0.5}),
        ("openvino", {}),
        ("openvino", {"segment": 0.5, "batch_size": 3}),
    ],
    ids=["default", "short-segment-batched", "shifted", "openvino", "openvino-batched"],
)
def test_a_graph_backend_separates_like_torch(backend, options, runs):
    model, audio = tiny_htdemucs(), noise(3.3)
    reference = _separate(model, audio, **options)
    _separate(model, audio, backend=backend, **options)  # exported and checked once
    runs.clear()
    got = _separate(model, audio, backend=backend, **options)
    assert got.shape == reference.shape
    assert snr_db(reference, got) >= onnx_backend.MIN_SNR_DB
    # the network really ran in that runtime, at the training length, batched as asked
    batch = options.get("batch_size", 1)
    assert runs and all(r["mix"][1:] == (2, RATE) and r["runtime"] == backend for r in runs)
    assert max(r["mix"][0] for r in runs) == batch


def test_group_norms_of_dconv_layers_run_as_layer_norms(tmp_path, exports):
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(2)
    model = HTDemucs(
        helpers.SOURCES, channels=8, depth=2, nfft=512, t_layers=1, t_heads=1, dconv_mode=3,
        dconv_comp=2,
        bottom_channels=0, segment=1,
    ).eval()  # fmt: skip
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) > 8 and {m.num_groups for m in norms} == {1}
    for norm in norms:  # away from the identity a freshly made norm starts as
        torch.nn.init.normal_(norm.weight, 1.0, 0.5), torch.nn.init.normal_(norm.bias, 0.0, 0.5)
    audio = noise(2.0, seed=3)
    got = _separate(model, audio, backend="onnxruntime", cache=tmp_path / "c")
    assert snr_db(_separate(model, audio), got) >= onnx_backend.MIN_SNR_DB
    (graph,) = (tmp_path / "c" / "graphs").glob("*.onnx")
    ops = [node.op_type for node in onnx.load(str(graph)).graph.node]
    assert "GroupNormalization" not in ops and ops.count("LayerNormalization") >= len(norms)


@pytest.mark.parametrize("backend", GRAPH_BACKENDS)
def test_chunks_of_exact_silence_skip_graph_backends_too(backend, runs):
    model = tiny_htdemucs()
    audio = np.concatenate([noise(1.0), np.zeros((2, 4 * RATE), np.float32), noise(1.3)], axis=1)
    reference = _separate(model, audio)
    _separate(model, audio, backend=backend)  # exported and checked once
    runs.clear()
    got = _separate(model, audio, backend=backend)
    # chunks of 1 s every 0.75 s: 9, of which 4 lie in the silence
    assert len(runs) == 5 and snr_db(reference, got) >= onnx_backend.MIN_SNR_DB


def test_a_bag_of_htdemucs_runs_each_part_in_onnxruntime(runs):
    from demucs.apply import BagOfModels

    bag = BagOfModels([tiny_htdemucs(0), tiny_htdemucs(1)], weights=[[1, 1, 1, 1], [3, 1, 1, 1]])
    audio = noise(2.0)
    reference = _separate(bag, audio)
    got = _separate(bag, audio, backend="onnxruntime")
    assert snr_db(reference, got) >= onnx_backend.MIN_SNR_DB
    assert len({id(s) for s in onnx_backend._SESSIONS.values()}) >= 2


def test_the_graph_is_checked_written_once_and_reused(tmp_path, exports, runs, monkeypatch):
    checks = []
    real_check = onnx_backend._agreement
    monkeypatch.setattr(onnx_backend, "_agreement", lambda *a: checks.append(1) or real_check(*a))
    model = tiny_htdemucs()
    _separate(model, noise(2.0), backend="onnxruntime", cache=tmp_path / "c")
    graph, record = sorted((tmp_path / "c" / "graphs").iterdir(), key=lambda p: p.suffix != ".onnx")
    assert (graph.suffix, record.suffix, len(exports), len(checks)) == (".onnx", ".json", 1, 1)
    assert len(graph.stem) == 40 and record.stem == graph.stem  # named by its key, no temp left
    passed = json.loads(record.read_text())
    assert passed["sha256"] == sha256_file(graph) and passed["snr_db"] >= onnx_backend.MIN_SNR_DB
    ops = {node.op_type for node in onnx.load(str(graph)).graph.node}
    assert "MultiHeadAttention" in ops and "Attention" not in ops  # ONNX Runtime's own kernel
    assert "LayerNormalization" in ops and "GroupNormalization" not in ops  # one kernel each
    onnx_backend._SESSIONS.clear()  # as a new process: the file is read, not exported again,
    runs.clear()  # and its bytes match the record, so it is not checked again either
    os.utime(graph, (1, 1))
    audio = noise(2.0, seed=1)  # other audio: not a result-cache hit
    again = _separate(model, audio, backend="onnxruntime", cache=tmp_path / "c")
    assert len(exports) == 1 and len(checks) == 1 and runs
    assert graph.stat().st_mtime > 1  # its last use, for the cache's size cap
    assert snr_db(_separate(model, audio), again) >= onnx_backend.MIN_SNR_DB
    # the result cache keeps torch's and ONNX Runtime's stems apart; torch's key is unchanged
    torch_sep = bn.Separator(model, device="cpu", cache=False)
    onnx_sep = bn.Separator(model, device="cpu", backend="onnxruntime", cache=False)
    (torch_key, torch_params), (onnx_key, onnx_params) = (
        s.cache_key("0" * 40) for s in (torch_sep, onnx_sep)
    )
    assert torch_key != onnx_key and "backend" not in torch_params
    assert onnx_params["backend"] == "onnxruntime"
    assert bn.ResultCache(tmp_path / "c").clear() == 2 and not any(
        (tmp_path / "c" / "graphs").iterdir()
    )


@pytest.mark.parametrize("backend", GRAPH_BACKENDS)
def test_a_damaged_graph_is_exported_again(backend, tmp_path, exports):
    model, audio = tiny_htdemucs(), noise(1.5, seed=1)
    _separate(model, noise(1.5), backend=backend, cache=tmp_path / "c")
    (graph,) = (tmp_path / "c" / "graphs").glob("*.onnx")
    graph.write_bytes(b"not a graph")
    onnx_backend._SESSIONS.clear()
    with pytest.warns(UserWarning, match="does not load"):
        got = _separate(model, audio, backend=backend, cache=tmp_path / "c")
    assert len(exports) == 2 and graph.stat().st_size > 1000
    assert snr_db(_separate(model, audio), got) >= onnx_backend.MIN_SNR_DB


@pytest.mark.parametrize(
    ("backend", "label"), [("onnxruntime", "ONNX Runtime"), ("openvino", "OpenVINO")]
)
def test_a_graph_that_disagrees_with_torch_is_refused_and_not_kept(
    backend, label, tmp_path, exports, monkeypatch
):
    monkeypatch.setattr(onnx_backend, "MIN_SNR_DB", 1000.0)  # no real graph is this exact
    with pytest.raises(
        bn.SeparationError, match=rf": {label}'s result .* differs from torch's .* dB"
    ):
        _separate(tiny_htdemucs(), noise(1.5), backend=backend, cache=tmp_path / "c")
    assert len(exports) == 1
    assert not any((tmp_path / "c" / "graphs").iterdir())  # neither the graph nor a temp file
    assert not any((tmp_path / "c").rglob("stems.f32")) and not onnx_backend._SESSIONS


def test_without_a_cache_no_graph_is_kept(tmp_path, monkeypatch, exports):
    monkeypatch.setenv("BANDSCOPE_CACHE_DIR", str(tmp_path / "default"))
    _separate(tiny_htdemucs(), noise(1.5), backend="onnxruntime", cache=False)
    assert len(exports) == 1 and not (tmp_path / "default").exists()


def test_a_cpu_separation_leaves_the_callers_weights_trainable():
    model = tiny_htdemucs()
    _separate(model, noise(1.0))
    assert not any(p.is_inference() for p in model.parameters())


def test_options_are_checked_before_any_model_is_loaded(monkeypatch):
    with pytest.raises(bn.ParameterError, match="Invalid backend: 'onnx'; give one of torch"):
        bn.Separator("htdemucs", device="cpu", backend="onnx")
    with pytest.raises(bn.ParameterError, match="runs fp32 only"):
        bn.Separator("htdemucs", device="cpu", backend="onnxruntime", precision="bf16")
    with pytest.raises(bn.DeviceError, match="runs on the CPU, not cuda"):
        check_backend(torch.device("cuda"), "fp32", "onnxruntime")
    with pytest.raises(bn.ParameterError, match="runs fp32 only"):
        bn.separate_many([bn.demo.path("bass")], backend="onnxruntime", precision="bf16")
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else find(name)
    )
    with pytest.raises(bn.MissingDependencyError, match=r"needs onnxscript: pip install"):
        bn.Separator("htdemucs", device="cpu", backend="onnxruntime")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else find(name)
    )
    with pytest.raises(
        bn.MissingDependencyError, match=r"'openvino' needs openvino: .*'bandscope-nb\[openvino\]'"
    ):
        bn.Separator("htdemucs", device="cpu", backend="openvino")
    bn.Separator("htdemucs", device="cpu", backend="onnxruntime")  # needs no openvino


def test_openvino_is_checked_like_onnxruntime():
    with pytest.raises(bn.ParameterError, match="backend='openvino' runs fp32 only"):
        bn.Separator("htdemucs", device="cpu", backend="openvino", precision="bf16")
    with pytest.raises(bn.DeviceError, match="backend='openvino' runs on the CPU, not cuda"):
        check_backend(torch.device("cuda"), "fp32", "openvino")
    sep = bn.Separator(tiny_hdemucs(), device="cpu", backend="openvino", cache=False)
    with pytest.raises(
        bn.ParameterError, match=r"backend='openvino' runs HTDemucs models; .* is HDemucs"
    ):
        sep.separate(noise(1.0), RATE)


def test_openvino_keeps_a_graph_of_its_own_and_reuses_it(tmp_path, exports, runs):
    model, root = tiny_htdemucs(), tmp_path / "c"
    _separate(model, noise(1.0), backend="onnxruntime", cache=root)
    _separate(model, noise(1.0), backend="openvino", cache=root)
    assert [runtime for _, runtime in exports] == ["onnxruntime", "openvino"]
    graphs = {p: onnx.load(str(p)) for p in (root / "graphs").glob("*.onnx")}
    assert len(graphs) == 2  # one per runtime, each under its own key
    by_opset = {g.opset_import[0].version: g for g in graphs.values()}
    # OpenVINO's is plain opset 18 (ONNX Runtime's has its own attention kernel), and its
    # GLUs after a convolution are two convolutions (ONNX Runtime's still split one)
    assert {node.domain for node in by_opset[18].graph.node} == {""}
    assert "MultiHeadAttention" in {node.op_type for node in by_opset[23].graph.node}
    glus = {opset: _conv_splits(g) for opset, g in by_opset.items()}
    assert glus[18] == 0 and glus[23] >= 4
    convs = {o: [n.op_type for n in g.graph.node].count("Conv") for o, g in by_opset.items()}
    assert convs[18] == convs[23] + glus[23]
    onnx_backend._SESSIONS.clear()  # as a new process: read from the cache folder, not exported
    runs.clear()
    audio = noise(1.0, seed=1)
    got = _separate(model, audio, backend="openvino", cache=root)
    assert len(exports) == 2 and {r["runtime"] for r in runs} == {"openvino"}
    assert snr_db(_separate(model, audio), got) >= onnx_backend.MIN_SNR_DB


def test_other_architectures_are_refused_before_anything_runs(tmp_path, exports, runs):
    sep = bn.Separator(tiny_hdemucs(), device="cpu", backend="onnxruntime", cache=tmp_path / "c")
    with pytest.raises(bn.ParameterError, match=r"runs HTDemucs models; .* is HDemucs"):
        sep.separate(noise(1.0), RATE)
    assert not exports and not runs and not (tmp_path / "c").exists()


@pytest.mark.parametrize("backend", GRAPH_BACKENDS)
def test_the_command_line_separates_with_a_graph_backend(backend, tmp_path, runs):
    model = save_safetensors(tiny_htdemucs(), tmp_path / "tiny.safetensors")
    sf.write(tmp_path / "one.wav", noise(1.0).T, RATE)
    args = ["separate", "--model", model, "--device", "cpu", "--backend", backend]
    assert (
        main([str(a) for a in [*args, "--no-cache", "-o", tmp_path / "out", tmp_path / "one.wav"]])
        == 0
    )
    provenance = json.loads((tmp_path / "out" / "one" / ".bandscope.json").read_text())
    assert provenance["backend"] == backend and runs
    assert {r["runtime"] for r in runs} == {backend}
    assert sorted(p.name for p in (tmp_path / "out" / "one").glob("*.flac")) == [
        "bass.flac",
        "drums.flac",
        "other.flac",
        "vocals.flac",
    ]


def test_a_graph_that_cannot_be_kept_is_exported_for_the_process_only(tmp_path, exports, runs):
    root = tmp_path / "c"
    bn.ResultCache(root).lock("0" * 40)  # makes the cache folder
    (root / "graphs").write_text("not a folder")  # a foreign file where the graphs go
    model, audio = tiny_htdemucs(), noise(1.5)
    with pytest.warns(UserWarning, match="Could not keep .* exported graph in the cache folder"):
        got = _separate(model, audio, backend="onnxruntime", cache=root)
    assert (root / "graphs").read_text() == "not a folder" and len(exports) == 1 and runs
    assert snr_db(_separate(model, audio), got) >= onnx_backend.MIN_SNR_DB


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch, exports):
    import errno

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(onnx_backend, "atomic_path", full)
    model, audio = tiny_htdemucs(), noise(1.0)
    with pytest.raises(bn.SeparationError, match=r"exported graph to a temporary folder .* disk"):
        _separate(model, audio, backend="onnxruntime")
    with (
        pytest.warns(UserWarning, match="for this process only"),
        pytest.raises(bn.SeparationError, match="No space left"),
    ):
        _separate(model, audio, backend="onnxruntime", cache=tmp_path / "c")
    assert not any((tmp_path / "c" / "graphs").iterdir())
    assert not any((tmp_path / "c").rglob("stems.f32")) and not onnx_backend._SESSIONS


def test_a_stored_graph_is_checked_again_when_a_process_loads_it(tmp_path, exports):
    root = tmp_path / "c"
    _separate(tiny_htdemucs(0), noise(1.0), backend="onnxruntime", cache=root)
    (first,) = (root / "graphs").glob("*.onnx")
    other = tiny_htdemucs(1)  # another model; give it the first one's graph under its key
    _separate(other, noise(1.0), backend="onnxruntime", cache=root)
    (second,) = set((root / "graphs").glob("*.onnx")) - {first}
    first.replace(second)  # its record's digest no longer matches: checked against torch
    onnx_backend._SESSIONS.clear()
    audio = noise(1.0, seed=2)
    with pytest.warns(UserWarning, match="disagrees with torch"):
        got = _separate(other, audio, backend="onnxruntime", cache=root)
    assert len(exports) == 3 and snr_db(_separate(other, audio), got) >= onnx_backend.MIN_SNR_DB


def test_constructor_options_without_weights_get_graphs_of_their_own(exports):
    from demucs.htdemucs import HTDemucs

    def build(**extra):
        torch.manual_seed(0)
        options = dict(channels=4, depth=2, nfft=512, t_layers=1, t_heads=1, dconv_mode=0)
        return HTDemucs(list(helpers.SOURCES), segment=1, bottom_channels=0, **options, **extra)

    plain, scaled = build().eval(), build(freq_emb=0.5).eval()
    audio = noise(1.0)
    _separate(plain, audio, backend="onnxruntime")
    got = _separate(scaled, audio, backend="onnxruntime")
    assert len(exports) == 2 and snr_db(_separate(scaled, audio), got) >= onnx_backend.MIN_SNR_DB


def test_models_that_do_not_pad_to_their_training_length_are_refused(exports):
    from demucs.htdemucs import HTDemucs

    options = dict(channels=4, depth=2, nfft=512, t_layers=1, t_heads=1, dconv_mode=0)
    net = HTDemucs(
        list(helpers.SOURCES), bottom_channels=0, segment=1, use_train_segment=False, **options
    ).eval()
    with pytest.raises(bn.ParameterError, match="use_train_segment=False"):
        _separate(net, noise(1.0), backend="onnxruntime")
    assert not exports


def test_a_model_made_in_inference_mode_still_separates_with_torch():
    with torch.inference_mode():
        model = tiny_htdemucs(4)
    got = _separate(model, noise(1.0))
    assert got.shape == (4, 2, RATE) and np.isfinite(got).all()


def test_auto_device_means_the_cpu_for_onnxruntime(monkeypatch):
    from bandscope_nb.separation import devices

    asked = []
    real = devices.resolve_device
    monkeypatch.setattr(devices, "resolve_device", lambda name: asked.append(name) or real(name))
    sep = bn.Separator(tiny_htdemucs(), backend="onnxruntime", cache=False)
    assert asked == ["cpu"] and sep.device.type == "cpu"


def test_the_cache_counts_its_graphs_and_keeps_an_unfinished_one_until_it_is_stale(
    tmp_path, exports
):
    import time

    root = tmp_path / "c"
    _separate(tiny_htdemucs(), noise(1.0), backend="onnxruntime", cache=root)
    cache = bn.ResultCache(root)
    files = list((root / "graphs").iterdir())
    assert cache.info()["graphs_bytes"] == sum(p.stat().st_size for p in files) > 1000
    young, old = (root / "graphs" / f".{'a' * 40}.onnx.{tag}.part" for tag in ("x1", "x2"))
    young.write_bytes(b"being written")
    old.write_bytes(b"left by a killed process")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    cache.graphs()  # sweeps what a killed process left
    assert young.exists() and not old.exists()
    cache.clear()  # another process may still be writing the young one
    assert sorted(p.name for p in (root / "graphs").iterdir()) == [young.name]


def test_graphs_are_under_the_cache_size_cap_least_recently_used_first(tmp_path, exports):
    root = tmp_path / "c"
    _separate(tiny_htdemucs(), noise(1.0), backend="onnxruntime", cache=root)
    (graph,) = (root / "graphs").glob("*.onnx")
    entries = bn.ResultCache(root).info()["bytes"]
    os.utime(graph, (1, 1))  # used long before the entry
    cache = bn.ResultCache(root, max_bytes=entries)  # room for the entry alone
    assert cache.evict() == 1
    assert not any((root / "graphs").iterdir()) and cache.info()["entries"] == 1
