"""Weight files: checksums before unpickling, validated safetensors metadata."""

from __future__ import annotations

import hashlib
import json
import pickle
import time

import pytest
import torch
from helpers import tiny_hdemucs, tiny_htdemucs
from safetensors.torch import save_file

from bandscope_nb.errors import ModelIntegrityError, ModelUnavailableError
from bandscope_nb.modelfiles import (
    download_file,
    load_safetensors,
    load_th,
    save_safetensors,
    save_th,
    sha256_file,
)


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


def test_th_without_checksum_is_refused_without_unpickling(tmp_path):
    path, marker = malicious_th(tmp_path, "weights.th")
    with pytest.raises(ModelIntegrityError, match="known checksum"):
        load_th(path)
    assert not marker.exists()


def test_th_with_caller_sha256(tmp_path):
    path = save_th(tiny_hdemucs(), tmp_path / "x.th")
    renamed = path.rename(tmp_path / "plain.th")
    digest = hashlib.sha256(renamed.read_bytes()).hexdigest()
    assert load_th(renamed, sha256=digest).sources == ["drums", "bass", "other", "vocals"]
    with pytest.raises(ModelIntegrityError, match="does not match"):
        load_th(renamed, sha256="0" * 64)
    with pytest.raises(ModelIntegrityError, match="8 hex"):
        load_th(renamed, sha256="abc")


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
    meta = {"klass": "demucs.hdemucs.HDemucs", "args": json.dumps([["a", "b"]]), "kwargs": "{}"}
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
