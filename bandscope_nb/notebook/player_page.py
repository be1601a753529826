"""The player without a kernel: an offline copy for saved notebooks, HTML exports and pages.

A notebook shows a :class:`~bandscope_nb.notebook.player.StemPlayer` as two outputs: the live
widget, then this offline copy. The copy holds one spectrogram image and one ``<audio
preload="metadata">`` element (Ogg Vorbis) per track, plus the player's script inline; where the
page may run scripts (an nbconvert export, a trusted notebook reopened without its kernel, a page
from :func:`save_html`) the script turns them into the same synced player, with no network.
Where scripts may not run, the images and ``<audio>`` players stay. A live widget of the same
player hides the copy, so a person sees one player.
"""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from html import escape

import numpy as np

from ..files import atomic_write
from .embed import encode_audio

__all__ = ["offline_html", "page_html", "save_html"]

OFFLINE_SECONDS = 30.0
IMAGE_SIZE = (1200, 96)


def _lane_image(tile: dict, lut: bytes, db_range: float) -> bytes:
    """A tile coloured as the browser colours it (player_tiles.js ``Tiles.canvas``), as a JPEG."""
    from PIL import Image

    from .lanes import RANGE_DB

    q = np.frombuffer(tile["data"], np.uint8).reshape(tile["rows"], tile["cols"])[::-1]
    if tile.get("scale") == "linear":  # a mask: 0 to 1, all of it
        db_range = RANGE_DB
    lo = (RANGE_DB - db_range) * 255 / RANGE_DB
    index = np.clip(np.rint((q.astype(np.float32) - lo) * 255 / (255 - lo)), 0, 255)
    rgb = np.frombuffer(lut, np.uint8).reshape(256, 3)[index.astype(np.uint8)]
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").resize(IMAGE_SIZE, Image.Resampling.BILINEAR).save(
        buf, format="JPEG", quality=85
    )
    return buf.getvalue()


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def offline_html(player, *, seconds: float | None = OFFLINE_SECONDS) -> str:
    """The player as self-contained HTML: images, ``<audio>`` and the inline script.

    Parameters
    ----------
    player : StemPlayer
    seconds : float or None
        Audio embedded per track, from the start (``None``: all of it). The images always
        cover the whole track.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> from bandscope_nb.notebook.player import StemPlayer
    >>> html = offline_html(StemPlayer(bn.demo.load()[1]), seconds=2)
    >>> html.count('<audio class="bn-track"'), html.count("<script>")
    (4, 1)
    """
    from .player import player_script, player_style

    player.wait(audio=False)  # the lanes' pictures
    rate = player.stems.sample_rate
    heard = player.duration if seconds is None else min(float(seconds), player.duration)
    names = list(player.tracks)
    with ThreadPoolExecutor(max_workers=2) as pool:  # libvorbis runs without the GIL
        sounds = list(
            pool.map(lambda name: encode_audio(player._samples[name], rate, duration=heard), names)
        )
    lanes = player._lanes or [None] * (len(names) + len(player.pictures))  # None: lanes failed
    images = [
        tile
        and _lane_image(
            tile, player._lut_linear if tile.get("scale") else player._lut, player.db_range
        )
        for tile in lanes
    ]
    uid = player._uid
    keys = ("tracks", "stem_names", "pictures", "lane_order", "lane_labels", "mixer", "gains")
    state = {key: getattr(player, key) for key in (*keys, "muted", "soloed", "listen", "kind")}
    state.update(
        _uid=uid,
        duration=heard,
        position=0.0,
        playing=False,
        loop=[],
        view=[0.0, heard],
        kind="stft",
        db_range=player.db_range,
        ref_db=player.ref_db,
        lane_height=player.lane_height,
        note=_note(player, heard),
        freqs=player._lanes[0]["freqs"] if player._lanes else [],
        image_t1=player.duration,
        sample_rate=rate,
        _lut=list(player._lut),
        _lut_linear=list(player._lut_linear),
    )
    sounds += [None] * len(player.pictures)  # mask lanes: a picture, no audio
    lane_names = [*names, *player.pictures]
    figures = "".join(
        _figure(
            player.lane_labels.get(lane_names[index], lane_names[index]),
            index,
            images[index],
            sounds[index],
        )
        for index in (lane_names.index(name) for name in player.lane_order)
    )
    script = player_script()
    if "</script" in script.lower():  # would end the inline script early
        raise RuntimeError("The player's script must not contain '</script'.")
    state_json = json.dumps(state).replace("</", "<\\/")
    css = player_style()
    return (
        f'<div class="bandscope-offline" id="bn-offline-{uid}" data-model-id="{uid}">'
        f"<style>{css}</style>"
        f'<div class="bn-static"><p class="bn-offline-note">{escape(state["note"])}</p>'
        f"{figures}</div>"
        f'<script type="application/json" class="bn-state">{state_json}</script>'
        f"<script>{script}\nBandscopePlayer.upgrade("
        f'document.getElementById("bn-offline-{uid}"));</script></div>'
    )


def _figure(name: str, index: int, image: bytes | None, sound: bytes | None) -> str:
    """One lane of the offline copy: its picture (if drawn) and its audio (if a track)."""
    what = "spectrogram" if sound else "mask"
    picture = (
        f'<img class="bn-lane-image" data-lane="{index}" alt="{what} of {escape(name)}" '
        f'src="{_data_uri("image/jpeg", image)}"/>'
        if image
        else ""
    )
    audio = (
        f'<audio class="bn-track" data-track="{index}" controls preload="metadata" '
        f'src="{_data_uri("audio/ogg", sound)}"></audio>'
        if sound
        else ""
    )
    return f"<figure><figcaption>{escape(name)}</figcaption>{picture}{audio}</figure>"


def _note(player, heard: float) -> str:
    """What the offline copy holds, in words."""
    what = f"{len(player.tracks)} tracks"
    if heard < player.duration - 1e-6:
        return f"Offline copy: {what}, first {heard:g} s of {player.duration:.1f} s."
    return f"Offline copy: {what}, {heard:.1f} s."


def page_html(player, *, title: str = "bandscope player", seconds: float | None = None) -> str:
    """A standalone HTML page holding the player (all script inline, no network)."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        '<body style="margin:16px;font-family:system-ui,sans-serif">'
        f"<h1 style='font-size:18px'>{escape(title)}</h1>"
        f"{offline_html(player, seconds=seconds)}</body></html>"
    )


def save_html(player, path, *, title: str = "bandscope player", seconds: float | None = None):
    """Write :func:`page_html` to ``path`` atomically; return the path.

    Examples
    --------
    >>> import tempfile, bandscope_nb as bn
    >>> from pathlib import Path
    >>> from bandscope_nb.notebook.player import StemPlayer
    >>> page = save_html(StemPlayer(bn.demo.load()[1]), Path(tempfile.mkdtemp()) / "p.html")
    >>> page.read_text()[:15]
    '<!DOCTYPE html>'
    """
    html = page_html(player, title=title, seconds=seconds)
    return atomic_write(path, html.encode("utf-8"))
