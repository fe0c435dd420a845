"""Run collection modules through ansible-playbook (shared by the module tests)."""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def run_tasks(env, tasks, module_defaults=None, diff=False, timeout=300):
    """Run tasks [(module, args, check_mode)] in one playbook (``module_defaults``: the play's,
    e.g. ``{"group/octollm.alert_response.k8s": {...}}``); returns their results, each with
    the run's output as ``_stdout``."""
    play = {"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": f"task {i}", f"octollm.alert_response.{module}": args, "check_mode": check, "diff": diff,
         "ignore_errors": True} for i, (module, args, check) in enumerate(tasks)]}
    if module_defaults:
        play["module_defaults"] = module_defaults
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        yaml.safe_dump([play], fh)
    try:
        proc = subprocess.run(["ansible-playbook", fh.name], check=False, cwd=REPO, text=True, capture_output=True,
                              timeout=timeout, env=dict(env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"))
    finally:
        Path(fh.name).unlink()
    assert proc.returncode in (0, 2), proc.stderr[-3000:]
    results = [task["hosts"]["localhost"] for task in json.loads(proc.stdout)["plays"][0]["tasks"]]
    for result in results:
        result["_stdout"] = proc.stdout
    return results


def run_module(env, module, args, check=False, diff=False, module_defaults=None):
    """Run one module task; returns its result (+ ``_stdout``)."""
    return run_tasks(env, [(module, args, check)], module_defaults, diff)[0]
