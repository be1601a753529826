"""Composition of the demo song: writes bandscope_nb/demo/song.json (note data, committed).

Run from the repository root, then tools/render_demo.py to render it. Beats are quarter notes;
each note is [start_beat, duration_beats, midi_pitch, velocity]. Released as CC0-1.0.
"""

import json

bpm = 100
bars = 8
chords = [
    ("A", 57, [57, 60, 64]),
    ("F", 53, [53, 57, 60]),
    ("C", 48, [52, 55, 60]),
    ("G", 55, [55, 59, 62]),
]
drums, bass, keys, lead = [], [], [], []
for bar in range(bars):
    t0 = bar * 4
    name, root, triad = chords[bar % 4]
    last = bar == bars - 1
    # drums: kick 1, 3, 3&; snare 2, 4; closed hats on eighths (open hat on 4&); crash bar 1 and 9
    for b in (0, 2, 2.5):
        drums.append([t0 + b, 0.25, 36, 110])
    for b in (1, 3):
        drums.append([t0 + b, 0.25, 38, 92])
    for e in range(8):
        drums.append([t0 + e / 2, 0.25, 44 if e % 2 else 42, 45 if e % 2 else 58])
    if bar == 0:
        drums.append([t0, 1.0, 49, 80])
    # bass: root on eighths with an octave jump and a passing note
    low = root - 24
    groove = [(0, 105), (0, 80), (12, 90), (0, 80), (0, 100), (0, 80), (7, 90), (0, 80)]
    for e, (off, vel) in enumerate(groove):
        bass.append([t0 + e / 2, 0.45, low + off, vel])
    # keys: chord stabs on 1, 2&, 4 (voiced around middle C), held on the last bar
    if last:
        keys.extend([t0, 4.0, p, 80] for p in triad)
    else:
        for b, d in ((0, 1.2), (1.5, 0.9), (3, 0.9)):
            for p in triad:
                keys.append([t0 + b, d, p, 78])
# lead: a vocal-like melody from bar 3 on (bars 1-2 are an intro without it)
phrase = [  # (beat in 4-bar phrase, duration, pitch)
    (0, 1.5, 76),
    (1.5, 0.5, 74),
    (2, 1, 72),
    (3, 1, 71),
    (4, 1.5, 72),
    (5.5, 0.5, 69),
    (6, 2, 69),
    (8, 1, 67),
    (9, 1, 72),
    (10, 1.5, 76),
    (11.5, 0.5, 77),
    (12, 1, 79),
    (13, 1, 77),
    (14, 2, 74),
]
for start_bar in (2, 6):
    for b, d, p in phrase:
        if start_bar * 4 + b < bars * 4:
            lead.append([start_bar * 4 + b, d * 0.95, p, 96])
lead.append([bars * 4 - 4, 3.5, 69, 90])
song = {
    "title": "Band Scope Demo (original, written for bandscope-nb)",
    "license": "CC0-1.0",
    "tempo_bpm": bpm,
    "beats": bars * 4,
    "tail_seconds": 0.8,
    "sample_rate": 44100,
    "soundfont": "/usr/share/sounds/sf2/FluidR3_GM.sf2 (Debian fluid-soundfont-gm)",
    "tracks": [
        {"stem": "drums", "channel": 9, "program": 0, "pan": 64, "notes": drums},
        {"stem": "bass", "channel": 0, "program": 33, "pan": 64, "notes": bass},
        {"stem": "other", "channel": 1, "program": 4, "pan": 44, "notes": keys},
        {"stem": "vocals", "channel": 2, "program": 53, "pan": 64, "notes": lead},
    ],
}
with open("bandscope_nb/demo/song.json", "w") as f:
    json.dump(song, f, indent=None, separators=(",", ":"))
    f.write("\n")
