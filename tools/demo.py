#!/usr/bin/env python3
"""`make demo`: the closed loop on this machine, as an SRE would watch it.

Brings the local test bed up, starts the rulebook (ansible-rulebook with the shipped
rulebook and event source), then injects three faults one after the other:

  1. a bad rollout of api-gateway that answers 50 % 5xx      -> HighErrorRate -> rollback
  2. orchestrator crash-looping because postgres is wedged     -> PodCrashLoopBackOff
                                                                -> restart the dependency, then the pods
  3. a node going NotReady                                      -> NodeNotReady -> cordon + drain

Nothing is called by hand: Prometheus evaluates the runbook's rules, Alertmanager posts
to the rulebook, the procedures act behind the guardrails and verify with the metrics.
A line is printed for each step the incidents record (alert received, cause found,
action, verification, escalation), and the incident reports are printed at the end.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "testbed"))
sys.path.insert(0, str(REPO / ".collections"))
import testbed  # noqa: E402

from ansible_collections.octollm.alert_response.plugins.module_utils import incident as incident_mod  # noqa: E402
from ansible_collections.octollm.alert_response.plugins.module_utils import ledger as ledger_mod  # noqa: E402

COLOR = sys.stdout.isatty()
KINDS = {"alert": "alert received", "diagnosis": "cause found", "action": "action", "guardrail": "guardrail",
         "verification": "verification", "escalation": "escalation", "notification": "notified",
         "close": "closed", "resolved": "alert resolved", "correlation": "correlated", "error": "error"}


def say(msg: str, tag: str = "demo") -> None:
    stamp = time.strftime("%H:%M:%S")
    if COLOR:
        print(f"\033[2m{stamp}\033[0m \033[1m{tag:>14}\033[0m  {msg}", flush=True)
    else:
        print(f"{stamp} {tag:>14}  {msg}", flush=True)


class Kube:
    def __init__(self, env: dict):
        from kubernetes import client, config
        api = config.new_client_from_config(config_file=env["KUBECONFIG"])
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)

    def patch_template(self, ns: str, name: str, annotations: dict) -> None:
        self.apps.patch_namespaced_deployment(name, ns, {"spec": {"template": {"metadata": {
            "annotations": annotations}}}})

    def label_pods(self, ns: str, selector: str, labels: dict) -> list[str]:
        names = []
        for pod in self.core.list_namespaced_pod(ns, label_selector=selector).items:
            if pod.metadata.deletion_timestamp is None:
                self.core.patch_namespaced_pod(pod.metadata.name, ns, {"metadata": {"labels": labels}})
                names.append(pod.metadata.name)
        return names

    def annotate_pods(self, ns: str, selector: str, annotations: dict) -> None:
        for pod in self.core.list_namespaced_pod(ns, label_selector=selector).items:
            self.core.patch_namespaced_pod(pod.metadata.name, ns, {"metadata": {"annotations": annotations}})

    def node_not_ready(self, node: str, on: bool) -> None:
        value = "true" if on else None
        self.core.patch_node(node, {"metadata": {"labels": {"node-not-ready.stage.kwok.x-k8s.io": value}}})
        if not on:
            self.core.patch_node(node, {"spec": {"unschedulable": None}})


class Rulebook:
    def __init__(self, env: dict, ledger: str, workdir: Path):
        self.env, self.ledger, self.workdir = env, ledger, workdir
        self.proc = None

    def start(self) -> None:
        url = f"http://127.0.0.1:{self.env['OCTOLLM_EDA_PORT']}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2):
                raise SystemExit(f"another rulebook already listens on port {self.env['OCTOLLM_EDA_PORT']} "
                                 "(an earlier demo or test run?): stop it first")
        except OSError:
            pass
        self.workdir.mkdir(parents=True, exist_ok=True)
        varsfile = self.workdir / "vars.yml"
        varsfile.write_text(yaml.safe_dump({"alert_response_eda_port": int(self.env["OCTOLLM_EDA_PORT"]),
                                            "alert_response_ledger": self.ledger}))
        log = open(self.workdir / "rulebook.log", "ab")
        env = {**os.environ, **self.env}
        env.update(OCTOLLM_LEDGER=self.ledger, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                   PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}")
        self.proc = subprocess.Popen(
            [str(REPO / ".venv/bin/ansible-rulebook"), "-r", "octollm.alert_response.alertmanager",
             "-i", str(REPO / "inventories" / "local"), "--vars", str(varsfile), "-E", "OCTOLLM_EDA_TOKEN",
             "--execution-strategy", "parallel", "-m", "3"],
            cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"ansible-rulebook stopped; see {self.workdir / 'rulebook.log'}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise SystemExit("the rulebook's event source did not come up within 90 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


class Watcher:
    """Prints every new timeline entry of every incident, as it is recorded."""

    def __init__(self, ledger: str):
        self.ledger, self.seen = ledger, set()

    def poll(self) -> list[dict]:
        out = []
        with ledger_mod.Ledger.open(self.ledger) as lg:
            for inc in lg.incidents(limit=50):
                for e in lg.timeline(inc["id"]):
                    if e["id"] in self.seen:
                        continue
                    self.seen.add(e["id"])
                    out.append(e)
                    tag = KINDS.get(e["kind"])
                    if tag:
                        say(f"[incident {inc['id']} {inc['target_key']}] {e['summary']}", tag)
        return out

    def until(self, what: str, check, timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.poll()
            if check():
                return True
            time.sleep(1)
        say(f"{what}: not within {timeout:.0f} s (see the rulebook log)", "timeout")
        return False

    def escalated(self, target: str) -> bool:
        """Verified (or not) and then escalated: a node that stays NotReady after the drain
        is handed to a person, not closed."""
        with ledger_mod.Ledger.open(self.ledger) as lg:
            for inc in lg.incidents(target_key=target):
                kinds = [e["kind"] for e in lg.timeline(inc["id"])]
                if "verification" in kinds and "escalation" in kinds[kinds.index("verification"):]:
                    return True
        return False

    def closed(self, target: str) -> bool:
        with ledger_mod.Ledger.open(self.ledger) as lg:
            return any(i["status"] == "closed" for i in lg.incidents(target_key=target))


def fault_bad_rollout(kube: Kube, watcher: Watcher, timeout: float) -> str:
    target = "deployment/octollm-prod/api-gateway"
    say("rolling out api-gateway 3.0.3, which answers 50 % of requests with 5xx", "fault 1")
    kube.patch_template("octollm-prod", "api-gateway", {"faults.octollm.io/error-rate": "0.5",
                                                        "octollm.demo/release": "3.0.3"})
    watcher.until("the rollback", lambda: watcher.closed(target), timeout)
    return target


def fault_dependency(kube: Kube, watcher: Watcher, timeout: float) -> str:
    target = "deployment/octollm-prod/orchestrator"
    say("postgres stops accepting connections; orchestrator crash-loops with 'connection refused'", "fault 2")
    kube.label_pods("octollm-prod", "app=postgres", {"faults.octollm.io/not-ready": "true"})
    kube.annotate_pods("octollm-prod", "app=orchestrator", {"faults.octollm.io/logs": "connection-refused",
                                                            "faults.octollm.io/delay": "3s"})
    kube.label_pods("octollm-prod", "app=orchestrator", {"faults.octollm.io/crashloop": "true"})
    watcher.until("the restart", lambda: watcher.closed(target), timeout)
    return target


def fault_node(kube: Kube, watcher: Watcher, timeout: float) -> str:
    node = "node-000003"
    target = f"node/{node}"
    say(f"{node} stops reporting Ready (its kubelet is gone)", "fault 3")
    kube.node_not_ready(node, True)
    watcher.until("the drain", lambda: watcher.closed(target) or watcher.escalated(target), timeout)
    return target


def restore(kube: Kube) -> None:
    """Put the sample workloads back as the test bed made them."""
    kube.patch_template("octollm-prod", "api-gateway", {"faults.octollm.io/error-rate": None,
                                                        "octollm.demo/release": None})
    kube.label_pods("octollm-prod", "app=postgres", {"faults.octollm.io/not-ready": None})
    kube.label_pods("octollm-prod", "app=orchestrator", {"faults.octollm.io/crashloop": None})
    kube.node_not_ready("node-000003", False)


def report(ledger: str, targets: list[str]) -> None:
    with ledger_mod.Ledger.open(ledger) as lg:
        for target in targets:
            for inc in lg.incidents(target_key=target)[:1]:
                print()
                print(incident_mod.report_markdown(lg, inc["id"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=240, help="seconds to wait for each fault to be handled")
    args = ap.parse_args()
    say("bringing up the local test bed (the first run builds the control plane: ~7 min)")
    if subprocess.run([sys.executable, str(REPO / "tests/testbed/testbed.py"), "up"], check=False).returncode:
        return 1
    env = testbed.read_env()
    ledger = str(Path(env["OCTOLLM_TESTBED_DIR"]) / f"demo-{int(time.time())}.sqlite3")
    kube = Kube(env)
    restore(kube)
    rulebook = Rulebook(env, ledger, Path(env["OCTOLLM_TESTBED_DIR"]) / "demo")
    say(f"starting the rulebook (ledger {ledger})")
    rulebook.start()
    watcher = Watcher(ledger)
    targets = []
    try:
        for fault in (fault_bad_rollout, fault_dependency, fault_node):
            targets.append(fault(kube, watcher, args.timeout))
        say("all three faults handled; the reports follow")
    finally:
        restore(kube)
        rulebook.stop()
    report(ledger, targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
