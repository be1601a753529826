"""The result cache: keys, hits, corruption, eviction, concurrency, atomicity."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil

import numpy as np
import pytest
from helpers import tiny_htdemucs

from bandscope_nb.errors import CacheError, ParameterError
from bandscope_nb.separation.cache import MARKER, ResultCache, cache_key
from bandscope_nb.separation.modelfiles import save_safetensors
from bandscope_nb.separation.separator import Separator


def entry_dirs(cache: ResultCache):
    return sorted(p.parent for p in cache.entries.glob("*/*/meta.json"))


def test_key_covers_every_part():
    base = {"audio": "a", "model": "m", "params": {"overlap": 0.25, "segment": None}}
    key = cache_key(**base)
    assert cache_key(**{**base, "audio": "b"}) != key
    assert cache_key(**{**base, "model": "n"}) != key
    assert cache_key(**{**base, "params": {"overlap": 0.5, "segment": None}}) != key


def test_miss_then_hit_returns_the_same_stems(wav, ht_model):
    sep = Separator(ht_model, device="cpu", progress=False)
    first = sep.separate(wav)
    second = sep.separate(wav)
    assert not first.info["cached"] and second.info["cached"]
    np.testing.assert_array_equal(first.data, second.data)
    assert isinstance(second.data, np.memmap) and not second.data.flags.writeable
    assert len(entry_dirs(sep.cache)) == 1


def test_changed_parameters_miss(wav, ht_model):
    Separator(ht_model, device="cpu", progress=False).separate(wav)
    again = Separator(ht_model, device="cpu", overlap=0.5, progress=False).separate(wav)
    assert not again.info["cached"]


def corrupt(cache: ResultCache, how: str):
    (folder,) = entry_dirs(cache)
    data = folder / "stems.f32"
    if how == "truncate":
        with open(data, "r+b") as f:
            f.truncate(data.stat().st_size // 2)
    elif how == "flip":
        with open(data, "r+b") as f:
            f.seek(0)
            f.write(b"\xff" * 4096)
    else:
        (folder / "meta.json").write_text("{not json")


@pytest.mark.parametrize("how", ["truncate", "flip", "meta"])
def test_corrupt_entry_warns_and_recomputes(how, wav, ht_model):
    sep = Separator(ht_model, device="cpu", progress=False)
    good = np.array(sep.separate(wav).data)
    corrupt(sep.cache, how)
    with pytest.warns(UserWarning, match="corrupt"):
        again = sep.separate(wav)
    assert not again.info["cached"]
    np.testing.assert_array_equal(again.data, good)
    assert sep.separate(wav).info["cached"]


def test_verify_checks_every_byte(wav, ht_model):
    sep = Separator(ht_model, device="cpu", progress=False)
    sep.separate(wav)
    assert sep.cache.verify() == {}
    (folder,) = entry_dirs(sep.cache)
    with open(folder / "stems.f32", "r+b") as f:  # a byte between the sampled pages
        f.seek(4096 * 3 + 17)
        byte = f.read(1)
        f.seek(4096 * 3 + 17)
        f.write(bytes([byte[0] ^ 1]))
    assert list(sep.cache.verify()) == [str(folder)]


def test_lru_eviction(tmp_path, ht_model):
    cache = ResultCache(tmp_path / "c", max_bytes=10 * 1024**2)
    sep = Separator(ht_model, device="cpu", cache=cache, progress=False)
    clips = [np.full((2, 44100 * 4), 0.01 * (i + 1), np.float32) for i in range(3)]
    sep.separate(clips[0], 44100)  # ~5.6 MB per entry: at most one fits
    sep.separate(clips[1], 44100)
    assert len(entry_dirs(cache)) == 1
    assert sep.separate(clips[1], 44100).info["cached"]
    assert not sep.separate(clips[0], 44100).info["cached"]
    assert cache.info()["bytes"] <= cache.max_bytes


def test_info_and_clear(wav, ht_model):
    sep = Separator(ht_model, device="cpu", progress=False)
    sep.separate(wav)
    info = sep.cache.info()
    assert info["entries"] == 1 and info["bytes"] > 0
    assert sep.cache.clear() == 1
    assert sep.cache.info()["entries"] == 0


def test_invalid_cap(tmp_path):
    with pytest.raises(ParameterError, match="positive"):
        ResultCache(tmp_path, max_bytes=0)


def test_interrupt_leaves_no_entry(wav, tmp_path):
    import torch

    class Interrupting(torch.nn.Module):
        """A real model that gets interrupted on its second chunk (like Ctrl-C)."""

        def __init__(self):
            super().__init__()
            self.sources, self.samplerate, self.audio_channels, self.segment = ["a"], 44100, 2, 1
            self._calls = 0  # private: a public setting that changes is a new identity

        def forward(self, x):
            self._calls += 1
            if self._calls == 2:
                raise KeyboardInterrupt
            return x[:, None]

    cache = ResultCache(tmp_path / "c")
    model = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        Separator(model, device="cpu", cache=cache, progress=False).separate(wav)
    assert entry_dirs(cache) == []
    assert list((cache.root / "tmp").iterdir()) == []
    stems = Separator(model, device="cpu", cache=cache, progress=False).separate(wav)
    assert not stems.info["cached"] and len(entry_dirs(cache)) == 1


def test_cache_dir_that_is_a_file_still_separates(wav, ht_model, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="Could not use the result cache"):
        stems = Separator(ht_model, device="cpu", cache=blocker, progress=False).separate(wav)
    assert stems.frames == 3 * 44100


def _separate_in_child(model_path, wav, cache_dir, queue):
    sep = Separator(model_path, device="cpu", cache=cache_dir, progress=False)
    stems = sep.separate(wav)
    queue.put((stems.info["cached"], float(np.abs(stems.data).sum())))


def test_two_processes_share_one_entry(wav, tmp_path):
    model_path = save_safetensors(tiny_htdemucs(), tmp_path / "m.safetensors")
    cache_dir = tmp_path / "shared"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_separate_in_child, args=(model_path, wav, cache_dir, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(cached for cached, _ in results) == [False, True]  # one computed, one hit
    assert results[0][1] == pytest.approx(results[1][1])
    cache = ResultCache(cache_dir)
    assert len(entry_dirs(cache)) == 1 and cache.verify() == {}
    meta = json.loads((entry_dirs(cache)[0] / "meta.json").read_text())
    assert meta["names"] == ["drums", "bass", "other", "vocals"]


def user_folder(tmp_path):
    """A folder of the user's that happens to hold ``tmp/`` and ``v1/`` (and more)."""
    folder = tmp_path / "my-music"
    for name in ("tmp/draft.txt", "v1/ab/notes.txt", "locks/x.lock", "song.flac"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("mine")
    old = folder / "tmp" / "old-project"
    old.mkdir()
    (old / "keep.txt").write_text("mine")
    os.utime(old, (0, 0))  # "stale" by age
    return folder


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_user_folder_is_never_used_or_cleared(tmp_path, wav, ht_model):
    folder = user_folder(tmp_path)
    before = files_under(folder)
    cache = ResultCache(folder)
    with pytest.raises(CacheError, match="not a bandscope cache"):
        cache.clear()
    with pytest.raises(CacheError, match="not a bandscope cache"):
        cache.info()
    with pytest.warns(UserWarning, match="not a bandscope cache"):
        stems = Separator(ht_model, device="cpu", cache=folder, progress=False).separate(wav)
    assert not stems.info["cached"]
    assert files_under(folder) == before


def test_cli_cache_clear_refuses_a_user_folder(tmp_path, monkeypatch, capsys):
    from bandscope_nb.cli import main

    folder = user_folder(tmp_path)
    before = files_under(folder)
    monkeypatch.setenv("BANDSCOPE_CACHE_DIR", str(folder))
    assert main(["cache", "clear"]) == 1
    assert "not a bandscope cache" in capsys.readouterr().err
    assert files_under(folder) == before


def test_clear_deletes_only_what_the_cache_made(tmp_path, wav, ht_model):
    root = tmp_path / "c"
    Separator(ht_model, device="cpu", cache=root, progress=False).separate(wav)
    assert (root / MARKER).is_file()
    (root / "tmp" / "user-notes").mkdir(parents=True)
    (root / "v1" / "README.txt").write_text("mine")
    (root / "v1" / "zz" / "not-a-key").mkdir(parents=True)
    stale = root / "tmp" / "stage-old"
    stale.mkdir()
    os.utime(stale, (0, 0))
    assert ResultCache(root).info()["entries"] == 1
    assert ResultCache(root).clear() == 1
    assert sorted(files_under(root)) == sorted(
        [
            MARKER,
            "locks",
            "tmp",
            "tmp/user-notes",
            "v1",
            "v1/README.txt",
            "v1/zz",
            "v1/zz/not-a-key",
        ]
    )


def test_an_empty_existing_folder_is_adopted(tmp_path, wav, ht_model):
    root = tmp_path / "empty"
    root.mkdir()
    Separator(ht_model, device="cpu", cache=root, progress=False).separate(wav)
    assert (root / MARKER).is_file() and len(entry_dirs(ResultCache(root))) == 1


@pytest.mark.parametrize("value", ["abc", "1.5e3", "-5", "0"])
def test_bad_size_cap_in_the_environment_is_a_parameter_error(monkeypatch, value):
    monkeypatch.setenv("BANDSCOPE_CACHE_MAX_BYTES", value)
    with pytest.raises(ParameterError, match=r"BANDSCOPE_CACHE_MAX_BYTES|positive"):
        ResultCache()


def test_the_key_is_what_was_decoded_not_the_path(tmp_path, ht_model):
    """Rewriting a file with the same size and mtime must not return the old file's stems."""
    import soundfile as sf
    from helpers import RATE, noise

    path = tmp_path / "song.wav"
    sf.write(path, noise(2, seed=1).T, RATE, subtype="FLOAT")
    sep = Separator(ht_model, device="cpu", progress=False)
    first = sep.separate(path)
    stat = path.stat()
    sf.write(path, noise(2, seed=2).T, RATE, subtype="FLOAT")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime
    second = sep.separate(path)
    assert not second.info["cached"]
    assert second.info["cache_key"] != first.info["cache_key"]
    direct = Separator(ht_model, device="cpu", cache=False, progress=False).separate(path)
    np.testing.assert_array_equal(second.data, direct.data)


def test_keys_include_the_package_version(monkeypatch):
    from bandscope_nb import _version

    key = cache_key(audio="a")
    monkeypatch.setattr(_version, "__version__", "99.0")
    assert cache_key(audio="a") != key


def test_an_entry_with_swapped_axes_is_removed_and_recomputed(wav, ht_model):
    sep = Separator(ht_model, device="cpu", progress=False)
    first = sep.separate(wav)
    (folder,) = entry_dirs(sep.cache)
    meta = json.loads((folder / "meta.json").read_text())
    meta["shape"] = [meta["shape"][1], meta["shape"][0], meta["shape"][2]]  # same byte size
    meta["names"] = meta["names"][:2]
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="does not match"):
        again = sep.separate(wav)
    assert not again.info["cached"] and again.data.shape == first.data.shape
    np.testing.assert_array_equal(again.data, first.data)


def test_a_cache_written_before_the_marker_existed_is_adopted(tmp_path, wav, ht_model):
    root = tmp_path / "old"
    Separator(ht_model, device="cpu", cache=root, progress=False).separate(wav)
    (root / MARKER).unlink()  # what an earlier version left: the layout alone
    (root / "tmp" / "tmpab12cd").mkdir()
    (root / "tmp" / "tmpab12cd" / "stems.f32").write_bytes(b"\0" * 16)
    assert ResultCache(root).info()["entries"] == 1
    assert (root / MARKER).is_file()
    (root / MARKER).unlink()
    (root / "v1" / "notes.txt").write_text("mine")  # anything else: not adopted
    with pytest.raises(CacheError, match="not a bandscope cache"):
        ResultCache(root).info()


@pytest.mark.parametrize("link", ["tmp", "v1", "locks"])
def test_symlinked_cache_folders_are_refused_and_nothing_is_deleted(tmp_path, wav, ht_model, link):
    root = tmp_path / "c"
    Separator(ht_model, device="cpu", cache=root, progress=False).separate(wav)
    victim = tmp_path / "victim"
    key = "ab" + "0" * 38
    for rel in ("stage-final/thesis.txt", f"ab/{key}/meta.json", f"{key}.lock"):
        (victim / rel).parent.mkdir(parents=True, exist_ok=True)
        (victim / rel).write_text("mine")
    shutil.rmtree(root / link)
    (root / link).symlink_to(victim)
    before = files_under(victim)
    with pytest.raises(CacheError, match="symlinks"):
        ResultCache(root).clear()
    assert files_under(victim) == before


def test_an_empty_tmp_folder_alone_is_not_adopted(tmp_path):
    folder = tmp_path / "mine"
    (folder / "tmp").mkdir(parents=True)
    with pytest.raises(CacheError, match="not a bandscope cache"):
        ResultCache(folder).info()
    assert not (folder / MARKER).exists()


@pytest.mark.parametrize("root", [123, "/tmp/\x00x", b"/tmp/x"])
def test_cache_roots_of_the_wrong_kind_are_parameter_errors(root):
    with pytest.raises(ParameterError, match="cache"):
        ResultCache(root)


def test_damage_outside_the_sampled_pages_is_found_on_the_next_read(wav, ht_model):
    sep = Separator(ht_model, device="cpu", progress=False)
    good = np.array(sep.separate(wav).data)
    (folder,) = entry_dirs(sep.cache)
    data = folder / "stems.f32"
    offset = data.stat().st_size // 2 + 123  # between two of the sampled pages
    with open(data, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert sep.cache._check(folder, full=False) is None  # the sampled check alone misses it
    with pytest.warns(UserWarning, match="digest mismatch"):
        again = sep.separate(wav)
    assert not again.info["cached"]
    np.testing.assert_array_equal(again.data, good)


def test_info_counts_staging_bytes(tmp_path, wav, ht_model):
    root = tmp_path / "c"
    Separator(ht_model, device="cpu", cache=root, progress=False).separate(wav)
    (root / "tmp" / "stage-abandoned").mkdir()
    (root / "tmp" / "stage-abandoned" / "stems.f32").write_bytes(b"\0" * 1000)
    assert ResultCache(root).info()["staging_bytes"] == 1000
