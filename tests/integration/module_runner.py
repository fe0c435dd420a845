"""Run one collection module through ansible-playbook (shared by the module tests)."""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def run_module(env, module, args, check=False, diff=False):
    """Run one task through ansible-playbook; returns its result (+ `_stdout`)."""
    task = {"name": "under test", f"octollm.alert_response.{module}": args, "check_mode": check, "diff": diff,
            "ignore_errors": True}
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        yaml.safe_dump(play, fh)
    try:
        proc = subprocess.run(["ansible-playbook", fh.name], check=False, cwd=REPO, text=True, capture_output=True,
                              timeout=300, env=dict(env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"))
    finally:
        Path(fh.name).unlink()
    assert proc.returncode in (0, 2), proc.stderr[-3000:]
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    result["_stdout"] = proc.stdout
    return result
