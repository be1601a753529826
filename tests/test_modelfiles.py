"""Weight files: checksums before unpickling, validated safetensors metadata."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import time
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from helpers import tiny_hdemucs, tiny_htdemucs
from safetensors.torch import save_file

from bandscope_nb.digests import sha256_file
from bandscope_nb.errors import ModelIntegrityError, ModelUnavailableError
from bandscope_nb.separation.modelfiles import (
    load_safetensors,
    load_th,
    save_safetensors,
    save_th,
)
from bandscope_nb.separation.pretrained import download_file


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("make", [tiny_htdemucs, tiny_hdemucs])
def test_th_round_trip(make, tmp_path):
    model = make()
    path = save_th(model, tmp_path / "sig.th")
    assert path.name == f"sig-{sha256_file(path)[:8]}.th"
    loaded = load_th(path)
    assert type(loaded) is type(model) and same_weights(loaded, model)
    assert not loaded.training


@pytest.mark.parametrize("make", [tiny_htdemucs, tiny_hdemucs])
def test_safetensors_round_trip_also_loads_in_demucs(make, tmp_path):
    from demucs.hf import load_safetensors_model

    model = make()
    path = save_safetensors(model, tmp_path / "m.safetensors")
    assert same_weights(load_safetensors(path), model)
    assert same_weights(load_safetensors_model(path), model)  # demucs' own HF loader agrees


class Marker:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def malicious_th(tmp_path, name: str):
    marker = tmp_path / "PWNED"
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"klass": Marker(str(marker))}))
    return path, marker


def test_tampered_th_is_refused_without_unpickling(tmp_path):
    path, marker = malicious_th(tmp_path, "sig-00000000.th")
    with pytest.raises(ModelIntegrityError, match="does not match"):
        load_th(path)
    assert not marker.exists()


def test_th_named_after_its_own_hash_is_refused_without_unpickling(tmp_path):
    """The checksum in a file's own name proves nothing: the marker must never appear."""
    path, marker = malicious_th(tmp_path, "x.th")
    named = path.rename(tmp_path / f"955717e8-{sha256_file(path)[:8]}.th")
    with pytest.raises(ModelIntegrityError, match="can only be loaded by a full unpickle"):
        load_th(named)
    with pytest.raises(ModelIntegrityError, match="safetensors"):
        load_th(named, sha256=sha256_file(named)[:16])  # a prefix checks, it does not vouch
    full = named.rename(tmp_path / f"evil-{sha256_file(named)}.th")  # the whole digest
    with pytest.raises(ModelIntegrityError, match="can only be loaded by a full unpickle"):
        load_th(full)
    with pytest.raises(ModelIntegrityError, match="8 to 64 hex"):
        load_th(full, sha256="")  # an empty checksum vouches for nothing
    assert not marker.exists()


def test_th_without_checksum_loads_through_the_restricted_unpickler(tmp_path):
    model = tiny_hdemucs()
    path = save_th(model, tmp_path / "x.th").rename(tmp_path / "weights.th")
    assert same_weights(load_th(path), model)
    bad, marker = malicious_th(tmp_path, "weights2.th")
    with pytest.raises(ModelIntegrityError, match="refused"):
        load_th(bad)
    assert not marker.exists()


def extra_globals_th(tmp_path):
    """A genuine package that also carries an ``argparse.Namespace`` (as old demucs training
    runs stored their arguments): only a full unpickle can read it."""
    import argparse

    model = tiny_hdemucs()
    args, kwargs = model._init_args_kwargs
    package = {
        "klass": type(model),
        "args": args,
        "kwargs": kwargs,
        "state": model.state_dict(),
        "training_args": argparse.Namespace(epochs=360),
    }
    path = tmp_path / "old.th"
    torch.save(package, path)
    return model, path


def test_th_needing_a_full_unpickle_loads_only_with_the_full_sha256(tmp_path):
    model, path = extra_globals_th(tmp_path)
    with pytest.raises(ModelIntegrityError, match=r"it needs argparse\.Namespace"):
        load_th(path)
    assert same_weights(load_th(path, sha256=sha256_file(path)), model)


def test_published_digests_are_trusted_for_a_full_unpickle(tmp_path, monkeypatch):
    from bandscope_nb.separation import modelfiles

    model, path = extra_globals_th(tmp_path)
    monkeypatch.setitem(modelfiles.PUBLISHED_SHA256, "test.th", sha256_file(path))
    assert same_weights(load_th(path), model)


def test_published_digests_extend_demucs_own_checksum_prefixes():
    from demucs.pretrained import REMOTE_ROOT

    from bandscope_nb.separation.published_weights import PUBLISHED_SHA256

    listed = (Path(REMOTE_ROOT) / "files.txt").read_text()
    for name, digest in PUBLISHED_SHA256.items():
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert name in listed and name.split("-")[1].startswith(digest[:8])


def hostile_safetensors(tmp_path, name="m.safetensors", state=None, **kwargs):
    model = tiny_hdemucs()
    args, init = model._init_args_kwargs
    init = {**init, **kwargs}
    sources = init.pop("sources", args[0])
    meta = {
        "klass": "demucs.hdemucs.HDemucs",
        "args": json.dumps([sources]),
        "kwargs": json.dumps(init),
    }
    state = state or {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / name), metadata=meta)
    return tmp_path / name


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sources": ["../../escape", "bass"]}, "stem name '../../escape'"),
        ({"sources": ["/abs", "b"]}, "stem name '/abs'"),
        ({"sources": ["a\x00b", "c"]}, "is not allowed"),
        ({"sources": ["x" * 300, "c"]}, "string of 300 characters"),
        ({"sources": ["x" * 100, "c"]}, "is not allowed"),
        ({"sources": ["drums", "Drums"]}, "unique"),
        ({"sources": []}, "between 1 and 64"),
        ({"samplerate": 100_000_000}, "samplerate"),
        ({"segment": float("nan")}, "segment"),
        ({"segment": 1e308}, "segment"),
        ({"depth": 1_000_000}, "depth"),
        ({"channels": 1_000_000}, "channels"),
        ({"channels": 2048}, "far more than"),
    ],
)
def test_hostile_init_arguments_are_refused_before_building(tmp_path, kwargs, match):
    path = hostile_safetensors(tmp_path, **kwargs)
    start = time.monotonic()
    with pytest.raises(ModelIntegrityError, match=match):
        load_safetensors(path)
    assert time.monotonic() - start < 20


def test_quantized_state_without_diffq_is_a_typed_error(tmp_path):
    """demucs itself calls sys.exit here, which would end a whole batch."""
    model = tiny_hdemucs()
    package = {
        "klass": type(model),
        "args": model._init_args_kwargs[0],
        "kwargs": model._init_args_kwargs[1],
        "state": {"__quantized": True, "quantized": []},
    }
    path = tmp_path / "q.th"
    torch.save(package, path)
    with pytest.raises(ModelIntegrityError, match="diffq"):
        load_th(path)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_weights_that_are_not_regular_files_are_refused_at_once(tmp_path, kind):
    import os

    path = tmp_path / "w.th"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    start = time.monotonic()
    for load in (load_th, load_safetensors):
        with pytest.raises(ModelIntegrityError, match="not a regular file"):
            load(path)
    assert time.monotonic() - start < 5


def test_th_with_caller_sha256(tmp_path):
    path = save_th(tiny_hdemucs(), tmp_path / "x.th")
    renamed = path.rename(tmp_path / "plain.th")
    digest = hashlib.sha256(renamed.read_bytes()).hexdigest()
    assert load_th(renamed, sha256=digest).sources == ["drums", "bass", "other", "vocals"]
    with pytest.raises(ModelIntegrityError, match="does not match"):
        load_th(renamed, sha256="0" * 64)
    for bad in ("abc", "", "g" * 64, "0" * 65):
        with pytest.raises(ModelIntegrityError, match="8 to 64 hex"):
            load_th(renamed, sha256=bad)


def test_th_flipped_byte_is_detected(tmp_path):
    path = save_th(tiny_hdemucs(), tmp_path / "x.th")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="tampered"):
        load_th(path)


def write_safetensors(path, metadata):
    save_file({"w": torch.zeros(2)}, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"klass": "os.system", "args": "[]", "kwargs": "{}"}, "klass"),
        ({"args": "[]", "kwargs": "{}"}, "klass"),
        ({"klass": "demucs.hdemucs.HDemucs", "args": "not json", "kwargs": "{}"}, "JSON"),
        ({"klass": "demucs.hdemucs.HDemucs", "kwargs": "{}"}, "args"),
        (
            {
                "klass": "demucs.hdemucs.HDemucs",
                "args": "[]",
                "kwargs": "{}",
                "structure": json.dumps({"_class": "subprocess.Popen"}),
            },
            "refused",
        ),
    ],
)
def test_broken_safetensors_metadata(metadata, match, tmp_path):
    path = write_safetensors(tmp_path / "bad.safetensors", metadata)
    with pytest.raises(ModelIntegrityError, match=match):
        load_safetensors(path)


def test_safetensors_weights_not_fitting_the_model(tmp_path):
    meta = {
        "klass": "demucs.hdemucs.HDemucs",
        "args": json.dumps([["a", "b"]]),
        "kwargs": json.dumps({"channels": 4, "depth": 2, "nfft": 64}),
    }
    path = write_safetensors(tmp_path / "bad.safetensors", meta)
    with pytest.raises(ModelIntegrityError, match="do not fit"):
        load_safetensors(path)


def test_not_a_safetensors_file(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelIntegrityError, match="not a readable safetensors"):
        load_safetensors(path)


def test_safetensors_checksum(tmp_path):
    path = save_safetensors(tiny_hdemucs(), tmp_path / "m.safetensors")
    assert load_safetensors(path, sha256=sha256_file(path)) is not None
    with pytest.raises(ModelIntegrityError):
        load_safetensors(path, sha256="f" * 64)


def test_download_checks_the_sha256_and_loads(weights_server, tmp_path):
    url, served = weights_server
    target = tmp_path / "checkpoints" / served.name
    path = download_file(f"{url}/{served.name}", target, sha256=sha256_file(served)[:8])
    assert path.read_bytes() == served.read_bytes()
    assert same_weights(load_th(path), load_th(served))


def test_download_with_a_wrong_sha256_keeps_nothing(weights_server, tmp_path):
    url, _ = weights_server
    with pytest.raises(ModelIntegrityError, match=r"/w.th: sha256 \w+ does not match"):
        download_file(f"{url}/w.th", tmp_path / "checkpoints" / "w.th", sha256="00000000")
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_download_from_a_stalled_server_times_out_and_keeps_nothing(weights_server, tmp_path):
    url, served = weights_server
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError, match=r"/stall: no data for 0.5 s"):
        download_file(
            f"{url}/stall",
            tmp_path / "checkpoints" / "w.th",
            sha256=sha256_file(served),
            timeout=0.5,
        )
    assert time.monotonic() - start < 4  # the server stays quiet for 5 s
    assert list((tmp_path / "checkpoints").iterdir()) == []


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("/missing", "HTTPError: HTTP Error 404"),
        ("/short", r"the connection closed after \d+ of \d+ bytes"),
    ],
)
def test_download_errors_keep_nothing(weights_server, tmp_path, path, match):
    url, _ = weights_server
    with pytest.raises(ModelUnavailableError, match=f"{path}: {match}"):
        download_file(url + path, tmp_path / "checkpoints" / "w.th", sha256="0" * 8)
    assert list((tmp_path / "checkpoints").iterdir()) == []


class _BuildsAModel:
    """Unpickles by calling HTDemucs itself with arguments of the pickle's choosing."""

    def __reduce__(self):
        from demucs.htdemucs import HTDemucs

        return (HTDemucs, (["a", "b"],), None)


def test_the_restricted_unpickler_may_name_model_classes_but_not_call_them(tmp_path):
    path = tmp_path / "builds.th"
    torch.save({"klass": _BuildsAModel(), "args": [], "kwargs": {}, "state": {}}, path)
    with pytest.raises(ModelIntegrityError, match="full unpickle"):
        load_th(path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"kwargs": {"samplerate": "fast"}}, "samplerate='fast'"),
        ({"kwargs": {"segment": "long"}}, "segment='long'"),
        ({"kwargs": {"segment": Fraction(10**400, 3)}}, "refused"),  # by the unpickler
        ({"args": [["a", "b"], 2, 48]}, "at most the sources"),
    ],
)
def test_odd_init_arguments_in_a_th_are_typed_errors(tmp_path, change, match):
    model = tiny_hdemucs()
    args, kwargs = model._init_args_kwargs
    package = {"klass": type(model), "args": args, "kwargs": kwargs, "state": model.state_dict()}
    package.update(change)
    if "kwargs" in change:
        package["kwargs"] = {**kwargs, **change["kwargs"]}
    path = tmp_path / "odd.th"
    torch.save(package, path)
    with pytest.raises(ModelIntegrityError, match=match):
        load_th(path)


class _FractionArgs:
    """Pickles as a call of ``Fraction`` with the given arguments."""

    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return (Fraction, self.args)


@pytest.mark.parametrize("args", [("1e999999999",), ("1" * 5000,), (10**100, 3), (True,)])
def test_fraction_bombs_are_refused_at_once(tmp_path, args):
    """``Fraction`` is allowed while unpickling, but only from small ints or a plain "p/q"."""
    path = tmp_path / "bomb.th"
    package = {"klass": None, "args": [], "kwargs": {"segment": _FractionArgs(*args)}}
    path.write_bytes(pickle.dumps({**package, "state": {}}))
    start = time.monotonic()
    with pytest.raises(ModelIntegrityError, match="refused"):
        load_th(path)
    assert time.monotonic() - start < 5


def test_htdemucs_segment_and_wiener_iterations_are_bounded(tmp_path):
    """A tiny file must not ask for a forward pass of minutes or gigabytes."""
    long = save_safetensors(tiny_htdemucs(segment=600), tmp_path / "long.safetensors")
    with pytest.raises(ModelIntegrityError, match=r"segment=600 must be None or .* \(0, 15\]"):
        load_safetensors(long)
    path = hostile_safetensors(tmp_path, wiener_iters=10_000_000)
    with pytest.raises(ModelIntegrityError, match="wiener_iters"):
        load_safetensors(path)


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"args": "[" * 50000, "kwargs": "{}"}, "not JSON"),
        ({"args": "[[" + "1" * 5000 + "]]", "kwargs": "{}"}, "not JSON"),
        ({"args": "[]", "kwargs": "{}", "structure": "[" * 50000}, "not JSON"),
    ],
)
def test_deep_or_huge_json_metadata_is_a_typed_error(tmp_path, metadata, match):
    path = write_safetensors(
        tmp_path / "deep.safetensors", {"klass": "demucs.hdemucs.HDemucs", **metadata}
    )
    with pytest.raises(ModelIntegrityError, match=match):
        load_safetensors(path)


def test_vouched_bytes_that_are_no_torch_file_are_a_typed_error(tmp_path):
    path = tmp_path / "junk.th"
    path.write_bytes(b"\x80\x04junk" * 100)
    with pytest.raises(ModelIntegrityError, match="not a readable torch file"):
        load_th(path, sha256=sha256_file(path))
