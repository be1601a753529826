"""Model resolution through the real loading paths: repo, folder, file, module, pretrained."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from helpers import tiny_hdemucs, tiny_htdemucs

from bandscope_nb.errors import ModelIntegrityError, ModelUnavailableError, ParameterError
from bandscope_nb.separation import pretrained
from bandscope_nb.separation.modelfiles import save_safetensors, save_th
from bandscope_nb.separation.models import load_model
from bandscope_nb.separation.pretrained import offline_reason, pretrained_names


@pytest.fixture
def local_repo(tmp_path):
    """demucs' local-repo layout: a bag yaml naming two checksummed .th signatures."""
    repo = tmp_path / "repo"
    save_th(tiny_htdemucs(1), repo / "aaaa1111.th")
    save_th(tiny_htdemucs(2), repo / "bbbb2222.th")
    (repo / "mybag.yaml").write_text(
        "models: ['aaaa1111', 'bbbb2222']\n"
        "weights: [[1., 0., 1., 1.], [0., 1., 1., 1.]]\n"
        "segment: 0.5\n"
    )
    return repo


def test_bag_from_local_repo(local_repo):
    loaded = load_model("mybag", repo=local_repo)
    assert len(loaded.parts) == 2
    assert loaded.parts[0][1] == [1.0, 0.0, 1.0, 1.0]
    assert float(loaded.parts[0][0].segment) == 0.5
    assert loaded.sources == ("drums", "bass", "other", "vocals")
    assert loaded.origin == f"repo {local_repo}"


def test_single_signature_from_local_repo(local_repo):
    loaded = load_model("aaaa1111", repo=local_repo)
    assert len(loaded.parts) == 1


def test_hf_folder_layout(tmp_path):
    folder = tmp_path / "hf"
    save_safetensors(tiny_htdemucs(1), folder / "s1.safetensors")
    save_safetensors(tiny_htdemucs(2), folder / "s2.safetensors")
    (folder / "twobag.yaml").write_text("models: ['s1', 's2']\n")
    loaded = load_model(folder)
    assert loaded.name == "twobag" and len(loaded.parts) == 2


def test_single_weights_file_loads_on_its_own(tmp_path):
    one = save_safetensors(tiny_htdemucs(), tmp_path / "only" / "model.safetensors")
    assert load_model(one).sources[0] == "drums"
    assert load_model(one.parent).sources[0] == "drums"  # a folder with one file, no yaml


def test_identity_is_the_weights_not_the_format(tmp_path):
    model = tiny_htdemucs(3)
    st = save_safetensors(model, tmp_path / "a" / "m.safetensors")
    th = save_th(model, tmp_path / "b" / "m.th")
    assert load_model(st).identity == load_model(th).identity == load_model(model).identity
    assert load_model(tiny_htdemucs(4)).identity != load_model(model).identity


def test_loaded_once_per_process(tmp_path):
    path = save_safetensors(tiny_hdemucs(), tmp_path / "m.safetensors")
    assert load_model(path) is load_model(path)


def test_a_weights_file_rewritten_with_the_same_size_and_mtime_is_reloaded(tmp_path):
    path = save_safetensors(tiny_hdemucs(seed=1), tmp_path / "m.safetensors")
    first = load_model(path)
    stat = path.stat()
    save_safetensors(tiny_hdemucs(seed=2), path)  # same architecture: same size
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = load_model(path)
    assert second is not first and second.identity != first.identity


def test_bag_naming_a_missing_signature(local_repo):
    (local_repo / "broken.yaml").write_text("models: ['aaaa1111', 'cccc3333']\n")
    with pytest.raises(ModelUnavailableError, match="cccc3333"):
        load_model("broken", repo=local_repo)


def test_bag_yaml_without_models(local_repo):
    (local_repo / "empty.yaml").write_text("weights: []\n")
    with pytest.raises(ModelIntegrityError, match="models"):
        load_model("empty", repo=local_repo)


def test_bag_of_disagreeing_models(tmp_path):
    save_safetensors(tiny_htdemucs(1), tmp_path / "s1.safetensors")
    save_safetensors(tiny_htdemucs(2, samplerate=22050), tmp_path / "s2.safetensors")
    (tmp_path / "mixed.yaml").write_text("models: ['s1', 's2']\n")
    with pytest.raises(ModelIntegrityError, match="disagree"):
        load_model("mixed", repo=tmp_path)


def test_duplicate_signatures(tmp_path):
    save_safetensors(tiny_hdemucs(), tmp_path / "dup.safetensors")
    save_th(tiny_hdemucs(), tmp_path / "dup.th")
    with pytest.raises(ModelIntegrityError, match="two weight files"):
        load_model("dup", repo=tmp_path)


def test_tampered_th_in_repo(local_repo):
    path = next(local_repo.glob("aaaa1111-*.th"))
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelIntegrityError, match="does not match"):
        load_model("mybag", repo=local_repo)


def test_offline_pretrained_fails_fast_with_instructions():
    assert offline_reason() == "offline mode is on (BANDSCOPE_OFFLINE)"
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError) as info:
        load_model("htdemucs")
    assert time.monotonic() - start < 10  # no hang, no retries: it fails at once
    message = str(info.value)
    assert "bandscope models fetch htdemucs" in message
    assert "offline mode is on" in message


def test_pretrained_from_the_hub_cache_offline():
    """A hub cache filled on another machine is used offline (real hf_hub_download lookup)."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / "models--adefossez--HTDemucs"
    snap = repo / "snapshots" / ("0" * 40)
    save_safetensors(tiny_htdemucs(), snap / "955717e8.safetensors")
    (snap / "htdemucs.yaml").write_text("models: ['955717e8']\n")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    loaded = load_model("htdemucs")
    assert loaded.origin == "hub adefossez/HTDemucs"
    assert loaded.sources == ("drums", "bass", "other", "vocals")


def test_pretrained_from_the_legacy_checkpoint_dir_offline():
    """A legacy .th in torch's hub checkpoint folder is checksum-checked before loading."""
    checkpoints = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    path = save_th(tiny_htdemucs(), checkpoints / "955717e8.th")
    path.rename(checkpoints / "955717e8-8726e21a.th")  # the published name, not its bytes
    with pytest.raises(ModelIntegrityError, match="does not match"):
        load_model("htdemucs")


@pytest.fixture
def legacy_mirror(weights_server, monkeypatch):
    """Online, with demucs' legacy URL table pointing at a local server of a tiny htdemucs."""
    import demucs.pretrained

    url, served = weights_server
    monkeypatch.delenv("BANDSCOPE_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(pretrained, "_hub_reachable", lambda: True)
    table = {"955717e8": f"{url}/{served.name}"}
    monkeypatch.setattr(demucs.pretrained, "_parse_remote_files", lambda _: table)
    return table, served


def test_pretrained_downloaded_from_the_legacy_repo(legacy_mirror):
    """The legacy route downloads over HTTP, checks the sha256 in the name, then loads."""
    _, served = legacy_mirror
    loaded = pretrained._from_legacy("htdemucs")
    assert loaded.origin == "demucs legacy repo"
    target = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / served.name
    assert target.read_bytes() == served.read_bytes()
    expected = tiny_htdemucs().state_dict()
    got = loaded.parts[0][0].state_dict()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_legacy_download_not_matching_its_name_keeps_nothing(legacy_mirror):
    table, _ = legacy_mirror
    table["955717e8"] = table["955717e8"].rsplit("-", 1)[0] + "-8726e21a.th"
    with pytest.raises(ModelIntegrityError, match=r"955717e8-8726e21a\.th: sha256"):
        pretrained._from_legacy("htdemucs")
    checkpoints = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    assert not any(checkpoints.iterdir())


def test_unknown_name():
    with pytest.raises(ModelUnavailableError, match="Unknown model 'nosuchmodel'"):
        load_model("nosuchmodel")


def test_missing_path():
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_model("./missing.safetensors")


def test_module_without_demucs_attributes():
    with pytest.raises(ParameterError, match="sources"):
        load_model(torch.nn.Linear(2, 2))


def test_pretrained_names_include_the_main_models():
    assert {"htdemucs", "htdemucs_ft", "htdemucs_6s", "hdemucs_mmi", "mdx_extra"} <= set(
        pretrained_names()
    )


BILLION_LAUGHS = (
    'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    + "".join(
        f"{b}: &{b} [*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "models: *i\n"
)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (BILLION_LAUGHS, "aliases are not allowed"),
        ("models: ['aaaa1111', 'bbbb2222']\nweights: ['1', '2']\n", "'weights' must be"),
        ("models: ['aaaa1111', 'bbbb2222']\nweights: [[.nan, 1, 1, 1], [1, 1, 1, 1]]\n", "weights"),
        ("models: ['aaaa1111', 'bbbb2222']\nsegment: .nan\n", "segment=nan"),
        ("models: ['aaaa1111', 'bbbb2222']\nsegment: 1e308\n", "segment"),
        ("models: ['../../etc/passwd']\n", "not a plain name"),
        ("models: [{'a': 1}]\n", "not a plain name"),
        ("models: []\n", "lists 0 models"),
        ("- just a list\n", "no 'models' list"),
        ("models: [\n", "not a valid bag YAML"),
    ],
)
def test_hostile_bag_yaml_is_a_typed_error(local_repo, text, match):
    assert len(BILLION_LAUGHS) < 600
    (local_repo / "mybag.yaml").write_text(text)
    start = time.monotonic()
    with pytest.raises(ModelIntegrityError, match=match):
        load_model("mybag", repo=local_repo)
    assert time.monotonic() - start < 10


def test_repo_with_a_fifo_named_like_weights_does_not_hang(local_repo):
    os.mkfifo(local_repo / "cccc3333.th")
    with pytest.raises(ModelIntegrityError, match="not a regular file"):
        load_model("mybag", repo=local_repo)


@pytest.mark.parametrize("name", ["../repo/mybag", "/etc/passwd", "a/b"])
def test_repo_model_names_are_plain_names(local_repo, name):
    with pytest.raises(ParameterError, match="Invalid model name"):
        load_model(name, repo=local_repo)


@pytest.mark.parametrize("name", ["user/name", "adefossez/htdemucs"])
def test_hub_names_outside_demucs_list_are_refused(name):
    with pytest.raises(ModelUnavailableError, match="Unknown model"):
        load_model(name)


def test_device_file_as_model_is_refused():
    with pytest.raises(ModelIntegrityError, match="not a regular file"):
        load_model("/dev/zero")


class _Net(torch.nn.Module):
    """A minimal real model: each source is the input scaled by a learnt gain."""

    def __init__(self, sources, samplerate=8000, audio_channels=2):
        super().__init__()
        self.sources, self.samplerate, self.audio_channels = sources, samplerate, audio_channels
        self.gain = torch.nn.Parameter(torch.ones(len(sources)))

    def forward(self, x):
        return self.gain[None, :, None, None] * x[:, None]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sources": ["../x", "b"]}, "stem name '../x'"),
        ({"sources": ["/etc/cron.d/x"]}, "stem name"),
        ({"sources": ["a", "a"]}, "unique"),
        ({"sources": ["ok"], "samplerate": 100_000_000}, "samplerate"),
        ({"sources": ["ok"], "samplerate": 44100.5}, "samplerate"),
        ({"sources": ["ok"], "audio_channels": 0}, "audio_channels"),
    ],
)
def test_modules_with_unsafe_attributes_are_refused(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        load_model(_Net(**kwargs))


def test_deeply_nested_bag_yaml_is_a_typed_error(local_repo):
    (local_repo / "mybag.yaml").write_text("models: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(ModelIntegrityError, match=r"not a valid bag YAML|too large"):
        load_model("mybag", repo=local_repo)


@pytest.mark.parametrize("model", [None, 123, b"htdemucs", "x" * 300, "a\x00b"])
def test_model_arguments_of_the_wrong_kind_are_parameter_errors(model):
    with pytest.raises((ParameterError, ModelUnavailableError)):
        load_model(model)


def test_repo_and_folder_models_reload_when_their_weights_are_rewritten(tmp_path):
    repo = tmp_path / "repo"
    save_safetensors(tiny_hdemucs(seed=1), repo / "w.safetensors")
    by_name, by_folder = load_model("w", repo=repo), load_model(repo)
    save_safetensors(tiny_hdemucs(seed=2), repo / "w.safetensors")
    assert load_model("w", repo=repo).identity != by_name.identity
    assert load_model(repo).identity != by_folder.identity
