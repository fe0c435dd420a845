"""The execution and decision environment definitions are valid for ansible-builder and
pin the same versions as requirements.txt."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / ".venv" / "bin" / "ansible-builder"


def pins(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([^\s]+)$", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(3)
    return out


@pytest.mark.parametrize("name", ["execution-environment.yml", "decision-environment.yml"])
def test_definition_is_consistent_with_requirements(name):
    doc = yaml.safe_load((REPO / name).read_text())
    assert doc["version"] == 3
    req = pins(REPO / "requirements.txt")
    deps = doc["dependencies"]
    assert deps["ansible_core"]["package_pip"] == f"ansible-core=={req['ansible-core']}"
    assert deps["ansible_runner"]["package_pip"] == f"ansible-runner=={req['ansible-runner']}"
    for pkg, ver in pins(REPO / deps["python"]).items():
        assert req.get(pkg) == ver, f"{deps['python']}: {pkg}=={ver} differs from requirements.txt"
    galaxy = yaml.safe_load((REPO / deps["galaxy"]).read_text())
    names = {c["name"] for c in galaxy["collections"]}
    assert {"kubernetes.core", "octollm.alert_response"} <= names
    assert (REPO / deps["system"]).exists()


def test_decision_environment_has_the_rulebook_engine_and_java():
    doc = yaml.safe_load((REPO / "decision-environment.yml").read_text())
    py = pins(REPO / doc["dependencies"]["python"])
    assert {"ansible-rulebook", "drools-jpy", "aiohttp"} <= set(py)
    assert "java-17-openjdk-headless" in (REPO / doc["dependencies"]["system"]).read_text()


@pytest.mark.parametrize("name", ["execution-environment.yml", "decision-environment.yml"])
def test_ansible_builder_creates_the_build_context(name, tmp_path):
    res = subprocess.run([str(BUILDER), "create", "-f", name, "-c", str(tmp_path / "ctx"), "--output-filename",
                          "Containerfile"], cwd=REPO, capture_output=True, text=True, check=False, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    containerfile = (tmp_path / "ctx" / "Containerfile").read_text()
    assert "ubi9/python-311" in containerfile
    assert (tmp_path / "ctx" / "_build" / "requirements.yml").exists()
