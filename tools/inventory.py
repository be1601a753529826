"""Supply-chain inventory: runtime dependencies and model artifacts, checked against a policy.

    python tools/inventory.py --write   # regenerate supply-chain/inventory.json and sbom.cdx.json
    python tools/inventory.py --check   # exit 1 if the environment, inventory or policy disagree

Dependencies are the runtime closure of bandscope-nb's requirements as installed (extras and
non-matching markers left out), with name, version, SPDX licence and source. Models come from the
hand-kept supply-chain/models.yaml, completed from demucs' published file lists.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
CHAIN = ROOT / "supply-chain"
PROJECT = "bandscope-nb"
HF = "https://huggingface.co"

# Trove classifiers and free-text licence names -> SPDX identifiers.
_NAMES = {
    "MIT License": "MIT",
    "MIT": "MIT",
    "BSD License": "BSD",
    "BSD": "BSD",
    "BSD 3-Clause License": "BSD-3-Clause",
    "Apache Software License": "Apache-2.0",
    "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "Apache 2.0": "Apache-2.0",
    "ISC license": "ISC",
}
_SPDX_TOKEN = re.compile(r"[A-Za-z0-9.+-]+")


def _license(dist: metadata.Distribution, overrides: dict) -> str:
    name = canonicalize_name(dist.metadata["Name"])
    if name in overrides:
        return overrides[name]["license"]
    md = dist.metadata
    if md.get("License-Expression"):
        return md["License-Expression"].strip()
    text = (md.get("License") or "").strip()
    if text and text.upper() != "UNKNOWN" and "\n" not in text and len(text) < 80:
        return _NAMES.get(text, text)
    for classifier in md.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            label = classifier.split("::")[-1].strip()
            if label in _NAMES:
                return _NAMES[label]
    return "UNKNOWN"


def runtime_closure() -> dict[str, metadata.Distribution]:
    """Installed distributions that bandscope-nb needs at run time (without itself)."""
    found: dict[str, metadata.Distribution] = {}
    todo = [PROJECT]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        found[name] = metadata.distribution(name)
        for line in found[name].requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    found.pop(canonicalize_name(PROJECT))
    return found


def dependencies(overrides: dict) -> list[dict]:
    return [
        {
            "name": name,
            "version": dist.version,
            "license": _license(dist, overrides),
            "source": f"https://pypi.org/project/{name}/{dist.version}/",
        }
        for name, dist in sorted(runtime_closure().items())
    ]


def models() -> list[dict]:
    """The hand-kept model list, completed with signatures, checksums and URLs."""
    from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

    from bandscope_nb.separation.pretrained import _hf_repo
    from bandscope_nb.separation.published_weights import PUBLISHED_SHA256

    legacy = _parse_remote_files(Path(REMOTE_ROOT) / "files.txt")
    out = []
    for entry in yaml.safe_load((CHAIN / "models.yaml").read_text())["models"]:
        name = entry["name"]
        bag = yaml.safe_load((Path(REMOTE_ROOT) / f"{name}.yaml").read_text())
        repo_id, _ = _hf_repo(name)
        files = []
        for sig in bag["models"]:
            url = legacy[sig]
            files.append(
                {
                    "signature": sig,
                    "sha256_prefix": url.rsplit("-", 1)[1].removesuffix(".th"),
                    # the full digest where we hold one (bandscope_nb/published_weights.py)
                    "sha256": PUBLISHED_SHA256.get(url.rsplit("/", 1)[1]),
                    "legacy_url": url,
                    "hf_url": f"{HF}/{repo_id}/resolve/main/{sig}.safetensors",
                }
            )
        out.append(
            {
                **entry,
                "hf_repo": f"{HF}/{repo_id}",
                "bag_url": f"{HF}/{repo_id}/resolve/main/{name}.yaml",
                "files": files,
            }
        )
    return out


def build() -> dict:
    policy = yaml.safe_load((CHAIN / "policy.yaml").read_text())
    return {
        "project": PROJECT,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "dependencies": dependencies(policy.get("overrides", {})),
        "models": models(),
    }


def problems(inventory: dict, current: dict, allow: set[str]) -> list[str]:
    """Everything that is wrong: drift between inventory and environment, disallowed licences."""
    found = []
    have = {d["name"]: d for d in inventory.get("dependencies", [])}
    now = {d["name"]: d for d in current["dependencies"]}
    for name in sorted(set(have) | set(now)):
        if name not in have:
            found.append(f"{name} {now[name]['version']} is installed but not in the inventory")
        elif name not in now:
            found.append(f"{name} is in the inventory but not installed")
        elif have[name]["version"] != now[name]["version"]:
            found.append(
                f"{name}: inventory has {have[name]['version']}, installed is "
                f"{now[name]['version']}"
            )
    for dep in current["dependencies"]:
        tokens = set(_SPDX_TOKEN.findall(dep["license"])) - {"AND", "OR", "WITH"}
        bad = sorted(tokens - allow) or (["UNKNOWN"] if not tokens else [])
        if bad:
            found.append(
                f"{dep['name']}: licence {dep['license']!r} has {bad}, not allowed by "
                "supply-chain/policy.yaml"
            )
    if inventory.get("models") != current["models"]:
        found.append("model artifacts differ from supply-chain/models.yaml + demucs' lists")
    return found


def check() -> list[str]:
    allow = set(yaml.safe_load((CHAIN / "policy.yaml").read_text())["allow"])
    inventory = json.loads((CHAIN / "inventory.json").read_text())
    return problems(inventory, build(), allow)


def write_sbom() -> Path:
    """A CycloneDX SBOM of the current environment (cyclonedx-bom's ``cyclonedx-py``)."""
    target = CHAIN / "sbom.cdx.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cyclonedx_py",
            "environment",
            "--output-format",
            "JSON",
            "--output-file",
            str(target),
            sys.executable,
        ],
        check=True,
    )
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.write:
        (CHAIN / "inventory.json").write_text(json.dumps(build(), indent=1) + "\n")
        print(f"wrote {CHAIN / 'inventory.json'} and {write_sbom()}")
        return 0
    found = check()
    for line in found:
        print(f"supply-chain: {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
