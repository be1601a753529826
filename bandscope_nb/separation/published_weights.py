"""Full sha256 digests of demucs' published ``.th`` weight files, held in the package.

demucs names each legacy file ``<signature>-<first 8 hex of its sha256>.th``; eight hex digits
are a corruption check, not proof of origin (a file can be made to match them, and any file can
be named after its own hash). A ``.th`` that needs a full unpickle (one that the restricted
unpickler refuses) is unpickled only when its whole sha256 is in this table or was passed by the
caller on purpose. Entries were collected on 2026-11-26 from public manifests that pin these
downloads; only digests given identically by at least two unrelated projects are listed, and
each one starts with the prefix in demucs' own ``files.txt`` (tested). The same digests are in
``supply-chain/inventory.json``.
"""

from __future__ import annotations

__all__ = ["PUBLISHED_SHA256"]

#: file name -> full sha256
PUBLISHED_SHA256 = {
    # htdemucs
    "955717e8-8726e21a.th": "8726e21a993978c7ba086d3872e7608d7d5bfca646ca4aca459ffda844faa8b4",
    # htdemucs_ft
    "f7e0c4bc-ba3fe64a.th": "ba3fe64ae8ef66ac9a4857222ce48efbdc5eb3ad375cb79dd13debee5aaa4066",
    "d12395a8-e57c48e6.th": "e57c48e6b0e38af4f7118d7bd08c49f0a0c0edf7d09143bdd902ea0d237303e6",
    "92cfc3b6-ef3bcb9c.th": "ef3bcb9c8b40d14ae5d51b6db2587339cc12c6b77c0be151ce6d69002e087bf2",
    "04573f0d-f3cf25b2.th": "f3cf25b222c4eed7cd49dd8b2c9597d50c18bd154090f7b919cfa5f93cf22c49",
    # htdemucs_6s
    "5c90dfd2-34c22ccb.th": "34c22ccb381c6f9fdbf324f04e1e2fe21aaaf293f5ded163a162697ff9a02ddd",
    # mdx (one of four files is pinned by two projects)
    "7d865c68-3d5dd56b.th": "3d5dd56b5bc986f136dff98655ded22b2b033f465ccec7a28640a6b15fd71ed6",
    # mdx_extra
    "e51eebcc-c1b80bdd.th": "c1b80bdd6de58274abf359e66822a76f49ce2b9f086fc5dc917ac14598e6bebf",
    "a1d90b5c-ae9d2452.th": "ae9d245283bf24b552913ee233a1101dcd0aeaed59b1c0a2da0e1f6eda15101b",
    "5d2d6c55-db83574e.th": "db83574e05b2308f76e2764819da673f2d16d437b9e619f5fcb72f275fc0e24f",
    "cfa93e08-61801ae1.th": "61801ae1567d606c97a9c3469e943ae306d0a873eeb60d623ae7cfc7042b3f68",
}
