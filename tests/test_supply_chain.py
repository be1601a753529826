"""The supply-chain inventory matches the installed environment and the licence policy."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import inventory  # noqa: E402

ALLOW = {"MIT", "BSD-3-Clause", "Apache-2.0"}


@pytest.fixture(scope="module")
def current():
    return inventory.build()


def test_environment_inventory_and_policy_agree():
    assert inventory.check() == []


def test_drift_and_bad_licences_are_reported(current):
    inv = copy.deepcopy(current)
    inv["dependencies"] = [d for d in inv["dependencies"] if d["name"] != "numpy"]
    inv["dependencies"][0]["version"] = "0.0.1"
    inv["dependencies"].append({"name": "ghost", "version": "1.0", "license": "MIT"})
    now = copy.deepcopy(current)
    now["dependencies"] = [
        {**d, "license": "GPL-3.0-only"} if d["name"] == "torch" else d for d in now["dependencies"]
    ]
    found = "\n".join(inventory.problems(inv, now, ALLOW | {"LLVM-exception"}))
    assert "numpy" in found and "not in the inventory" in found
    assert "0.0.1" in found
    assert "ghost is in the inventory but not installed" in found
    assert "torch: licence 'GPL-3.0-only'" in found


def test_unknown_licence_is_not_allowed(current):
    now = copy.deepcopy(current)
    now["dependencies"] = [{"name": "x", "version": "1", "license": "UNKNOWN"}]
    inv = {"dependencies": now["dependencies"], "models": now["models"]}
    assert inventory.problems(inv, now, ALLOW) == [
        "x: licence 'UNKNOWN' has ['UNKNOWN'], not allowed by supply-chain/policy.yaml"
    ]


def test_models_carry_checksums_and_both_sources(current):
    by_name = {m["name"]: m for m in current["models"]}
    files = by_name["htdemucs"]["files"]
    assert files == [
        {
            "signature": "955717e8",
            "sha256_prefix": "8726e21a",
            "sha256": "8726e21a993978c7ba086d3872e7608d7d5bfca646ca4aca459ffda844faa8b4",
            "legacy_url": "https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/"
            "955717e8-8726e21a.th",
            "hf_url": "https://huggingface.co/adefossez/HTDemucs/resolve/main/955717e8.safetensors",
        }
    ]
    assert len(by_name["htdemucs_ft"]["files"]) == 4
    for model in current["models"]:
        for file in model["files"]:
            assert file["sha256"] is None or file["sha256"].startswith(file["sha256_prefix"])
    assert all(f["sha256"] for f in by_name["htdemucs_ft"]["files"])
    assert all(m["license"] for m in current["models"])


def test_sbom_lists_every_runtime_dependency(current):
    sbom = json.loads((ROOT / "supply-chain" / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    components = {(c["name"].lower().replace("_", "-"), c["version"]) for c in sbom["components"]}
    for dep in current["dependencies"]:
        assert (dep["name"], dep["version"]) in components, dep["name"]
