"""Baselines on the demo song: oracles on top, the mix at the floor, docs kept current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bandscope_nb.demo.baselines import METHODS, demo_baselines, to_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs" / "baselines.md"


@pytest.fixture(scope="module")
def table():
    return demo_baselines()


def test_oracles_beat_the_mix_and_classical_on_every_stem(table):
    for stem in table["mix"]:
        for oracle in ("oracle_ibm", "oracle_irm", "oracle_wiener"):
            assert table[oracle][stem] > table["mix"][stem], (oracle, stem)
            assert table[oracle][stem] > table["classical"][stem], (oracle, stem)


def test_classical_beats_the_mix_on_every_stem(table):
    for stem in table["mix"]:
        assert table["classical"][stem] > table["mix"][stem], stem


def test_oracle_wiener_above_10_db_on_every_stem(table):
    assert min(table["oracle_wiener"].values()) > 10


def test_docs_table_is_current(table):
    text = DOCS.read_text()
    assert to_markdown(table).splitlines()[0] in text
    for method in METHODS:
        row = re.search(rf"^\| {method} \|(.+)\|$", text, re.M)
        assert row, method
        documented = [float(v) for v in row.group(1).split("|")]
        assert documented == pytest.approx(list(table[method].values()), abs=0.05)
