"""`ansible-galaxy collection build` makes a tarball that `ansible-galaxy collection
install` accepts, and the installed collection holds what users run."""
from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GALAXY = REPO / ".venv" / "bin" / "ansible-galaxy"


def run(*args, cwd=None):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH="/nonexistent")
    res = subprocess.run([str(GALAXY), *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_build_and_install(tmp_path):
    run("collection", "build", str(REPO), "--output-path", str(tmp_path))
    tarball = tmp_path / "octollm-alert_response-0.1.0.tar.gz"
    assert tarball.exists()
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert "MANIFEST.json" in names and "meta/runtime.yml" in names
    assert "prometheus/alert-response.rules.yml" in names
    assert "plugins/module_utils/ledger.py" in names
    # development-only content stays out of the artifact
    assert not any(n.startswith((".venv", ".testbed", ".collections", "tests/testbed/")) for n in names)
    dest = tmp_path / "installed"
    # kubernetes.core comes with the `ansible` bundle; Galaxy is not reachable here
    run("collection", "install", str(tarball), "-p", str(dest), "--no-deps")
    root = dest / "ansible_collections" / "octollm" / "alert_response"
    assert (root / "MANIFEST.json").exists()
    assert (root / "plugins" / "module_utils" / "ledger.py").exists()
    listing = subprocess.run([str(GALAXY), "collection", "list", "-p", str(dest)], capture_output=True, text=True,
                             check=False).stdout
    assert re.search(r"^octollm\.alert_response\s+0\.1\.0\s*$", listing, re.M), listing
