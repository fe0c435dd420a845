#!/usr/bin/env python3
"""`make demo`: bring up the local test bed, inject a fault, and show what happens.

This stage of the demo fires one runbook alert through the real Prometheus and
Alertmanager and shows which procedure the rulebook dispatches it to.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "testbed"))
import testbed  # noqa: E402


def say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {msg}", flush=True)


def http(url: str, body: dict | None = None, method: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def main() -> int:
    say("bringing up the local test bed (first run builds the control plane: ~7 min)")
    res = subprocess.run([sys.executable, str(REPO / "tests/testbed/testbed.py"), "up"], check=False)
    if res.returncode != 0:
        return res.returncode
    env = testbed.read_env()
    sim = env["OCTOLLM_SIMULATOR_URL"]
    sink = f"{sim}/sinks/alertmanager"
    seen = len(http(sink))
    say("fault: octollm-prod/api-gateway starts answering 40% 5xx")
    http(f"{sim}/steer", {"services": {"octollm-prod/api-gateway": {"error_rate": 0.4}}})
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            alerts = [a for d in http(sink)[seen:] for a in d["body"]["alerts"]
                      if a["labels"]["alertname"] == "HighErrorRate" and a["status"] == "firing"]
            if alerts:
                labels = alerts[-1]["labels"]
                say(f"alert received: HighErrorRate {labels['namespace']}/{labels['service']} "
                    f"({alerts[-1]['annotations']['summary']})")
                say(f"the rulebook dispatches it to playbook octollm.alert_response.{labels['procedure']} "
                    f"for target deployment/{labels['namespace']}/{labels['owner_name']}")
                return 0
            time.sleep(1)
        say("no alert within 120 s: see .testbed/logs/")
        return 1
    finally:
        http(f"{sim}/steer", {"services": {"octollm-prod/api-gateway": None}})


if __name__ == "__main__":
    sys.exit(main())
