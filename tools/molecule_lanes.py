#!/usr/bin/env python3
"""Run the molecule scenarios on the one shared test bed, several at a time where that is safe.

    molecule_lanes.py [--lanes N] [--only NAME] [scenario ...]

A scenario says in its molecule.yml what it shares with others (a comment line):

    # lane: exclusive   it faults what every scenario stands on (a node NotReady, drained or
                        under pressure): it runs alone, before the lanes start
    # lane: shared      it changes something cluster-wide or a shared server (Redis, PostgreSQL,
                        cert-manager, the default StorageClass): the shared scenarios run one
                        after the other in lane 1, beside namespaced ones in the other lanes
    (no line)           it stays in its own namespace: any lane takes it

Each lane runs as its own token of the runner's ServiceAccount (same RBAC), so the API
requests a converge records (tests/testbed/audit.py) are that scenario's only. Per scenario:
one log, tests/output/logs/molecule_<name>.log; one line "=== [molecule/<name>] ok|FAILED in
N s" on stdout and in tests/output/timings.txt; failed names in tests/output/molecule-failed.txt.
Exit status 1 if any scenario failed. A scenario still running after MOLECULE_SCENARIO_TIMEOUT
seconds (default 900) is stopped and counts as failed. The test bed's env must be exported (run-all.sh does).
"""
from __future__ import annotations

import argparse
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "extensions" / "molecule"
OUT = ROOT / "tests" / "output"
LANE_RE = re.compile(r"^#\s*lane:\s*(exclusive|shared)\b", re.MULTILINE)
SCENARIO_TIMEOUT_S = int(os.environ.get("MOLECULE_SCENARIO_TIMEOUT", "900"))
_print_lock = threading.Lock()


def scenarios(names: list[str]) -> list[tuple[str, str, bool]]:
    """(name, lane class, runs the full sequence) of every scenario, or of those named."""
    found = []
    for path in sorted(SCENARIOS.glob("*/molecule.yml")):
        name = path.parent.name
        if name == "default" or (names and name not in names):
            continue
        text = path.read_text()
        m = LANE_RE.search(text)
        found.append((name, m.group(1) if m else "any", "test_sequence" not in text))
    missing = set(names) - {f[0] for f in found}
    if missing:
        raise SystemExit(f"no molecule scenario named {', '.join(sorted(missing))} under {SCENARIOS}")
    return found


def lane_kubeconfig(lane: int) -> str:
    """A copy of the runner's kubeconfig with a token of its own (same ServiceAccount)."""
    base = os.environ["OCTOLLM_RUNNER_KUBECONFIG"]
    if lane == 1:
        return base
    token = subprocess.run(
        [os.environ["OCTOLLM_KUBECTL"], "--kubeconfig", os.environ["KUBECONFIG"], "-n", "octollm-system",
         "create", "token", "octollm-runner", "--duration=3h"],
        check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    cfg = yaml.safe_load(Path(base).read_text())
    cfg["users"][0]["user"] = {"token": token}
    path = OUT / "lanes" / f"runner-lane{lane}.kubeconfig"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return str(path)


def say(line: str) -> None:
    with _print_lock:
        print(line, flush=True)
        with open(OUT / "timings.txt", "a") as f:
            f.write(line + "\n")


def run(name: str, lane: int, kubeconfig: str, failed: list[str]) -> None:
    env = dict(os.environ, MOLECULE_GLOB="extensions/molecule/*/molecule.yml", OCTOLLM_RUNNER_KUBECONFIG=kubeconfig)
    log = OUT / "logs" / f"molecule_{name}.log"
    t0 = time.monotonic()
    with open(log, "w") as f:
        f.write(f"=== [molecule/{name}] molecule test -s {name} (lane {lane})\n")
        f.flush()
        proc = subprocess.Popen(["molecule", "test", "-s", name], cwd=ROOT, env=env, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=SCENARIO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # a hung scenario must not hold the run until CI's limit: stop it and its children
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            f.write(f"\nfatal: [molecule]: FAILED! => scenario {name} still running after {SCENARIO_TIMEOUT_S} s: "
                    "stopped (MOLECULE_SCENARIO_TIMEOUT)\n")
            rc = 124
    took = round(time.monotonic() - t0)
    if rc:
        with _print_lock:
            failed.append(name)
    say(f"=== [molecule/{name}] {'FAILED' if rc else 'ok'} in {took} s (lane {lane})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lanes", type=int, default=int(os.environ.get("MOLECULE_LANES", "2")),
                    help="scenarios run side by side (default $MOLECULE_LANES or 2; 1 runs them one by one)")
    ap.add_argument("--only", default="", help="a run-all.sh ONLY value: molecule or molecule/<scenario>")
    ap.add_argument("names", nargs="*", help="scenarios to run (default: all)")
    args = ap.parse_args()
    names = list(args.names)
    if args.only.startswith("molecule/"):
        names.append(args.only.split("/", 1)[1])
    found = scenarios(names)
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    lanes = max(1, args.lanes)
    kubeconfigs = [lane_kubeconfig(1)]
    for lane in range(2, lanes + 1):
        try:
            kubeconfigs.append(lane_kubeconfig(lane))
        except (subprocess.SubprocessError, OSError, KeyError) as exc:
            print(f"[molecule] lane {lane}: no token of its own ({exc}); running {len(kubeconfigs)} lane(s)", flush=True)
            break
    lanes = len(kubeconfigs)

    # 1. what every scenario stands on, alone
    for name, cls, _full in found:
        if cls == "exclusive":
            run(name, 1, kubeconfigs[0], failed)
    # 2. the shared ones one by one in lane 1; namespaced ones in any lane, longest (full sequence) first
    shared = [f[0] for f in found if f[1] == "shared"]
    free: queue.Queue = queue.Queue()
    for scenario in sorted((f for f in found if f[1] == "any"), key=lambda f: not f[2]):
        free.put(scenario[0])

    def lane_worker(lane: int) -> None:
        if lane == 1:
            for name in shared:
                run(name, 1, kubeconfigs[0], failed)
        while True:
            try:
                name = free.get_nowait()
            except queue.Empty:
                return
            run(name, lane, kubeconfigs[lane - 1], failed)

    workers = [threading.Thread(target=lane_worker, args=(lane,), name=f"lane{lane}") for lane in range(1, lanes + 1)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    (OUT / "molecule-failed.txt").write_text("".join(f"{n}\n" for n in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
