"""Shared pytest fixtures.

`testbed` (session scope) brings the local test bed up once per run -- or reuses it when
`make testbed-up` already started it -- and returns its environment (the keys of
.testbed/testbed.env: KUBECONFIG, OCTOLLM_PG_DSN, OCTOLLM_PROMETHEUS_URL, ...).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTBED = REPO / "tests" / "testbed" / "testbed.py"
# Import the collection the way Ansible does (ansible_collections.octollm.alert_response)
sys.path.insert(0, str(REPO / ".collections"))


def _state_dir() -> Path:
    return Path(os.environ.get("OCTOLLM_TESTBED_DIR", REPO / ".testbed"))


@pytest.fixture(scope="session")
def testbed() -> dict:
    """Start (or reuse) the test bed; returns its env as a dict."""
    res = subprocess.run([sys.executable, str(TESTBED), "up"], cwd=REPO, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=3600, check=False)
    if res.returncode != 0:
        pytest.fail(f"the test bed did not come up:\n{res.stdout[-4000:]}", pytrace=False)
    env = json.loads((_state_dir() / "testbed.json").read_text())
    return env


@pytest.fixture(scope="session")
def testbed_env(testbed) -> dict:
    """os.environ plus the test bed's variables: for subprocesses (ansible-playbook, ...)."""
    env = dict(os.environ)
    env.update(testbed)
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}"
    return env
