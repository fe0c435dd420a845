"""The intake end to end: the test bed's real Alertmanager posts to our event source
inside a real ansible-rulebook process running the shipped rulebook, which runs the
collection's playbooks. The playbooks run in dispatch-only mode (inventory variable
alert_response_dispatch_only): they open the incident and record which procedure the
alert was sent to, so these tests are about the intake, not the procedures."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# through the collection's import path (tests/conftest.py): plugins/module_utils on sys.path
# would shadow the redis package with module_utils/redis.py
from ansible_collections.octollm.alert_response.plugins.module_utils import ledger as ledger_mod  # noqa: E402

pytestmark = [pytest.mark.testbed, pytest.mark.slow]


def wait(what, fn, timeout=60.0, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Rulebook:
    """ansible-rulebook with the shipped rulebook, listening where Alertmanager posts."""

    def __init__(self, env: dict, workdir: Path, ledger: str):
        self.env, self.workdir, self.ledger = env, workdir, ledger
        self.port = int(env["OCTOLLM_EDA_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = workdir / "rulebook.log"
        inv = workdir / "inventory"
        (inv / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
        (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
        (inv / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump({
            "alert_response_dispatch_only": True, "alert_response_ledger": ledger,
            "alert_response_kubeconfig": env["OCTOLLM_RUNNER_KUBECONFIG"]}))
        (workdir / "vars.yml").write_text(yaml.safe_dump({
            "alert_response_eda_port": self.port, "alert_response_ledger": ledger}))
        # a folder: ansible-rulebook copies a folder whole (with group_vars), a file alone
        self.inventory = inv

    def start(self):
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(REPO / ".venv/bin/ansible-rulebook"), "-r", "octollm.alert_response.alertmanager",
             "-i", str(self.inventory), "--vars", str(self.workdir / "vars.yml"), "-E", "OCTOLLM_EDA_TOKEN",
             "--execution-strategy", "parallel", "-m", "4"],
            cwd=self.workdir, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait("the event source", self.healthy, 90)
        return self

    def healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"ansible-rulebook exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def post(self, payload: dict, token: str | None = None):
        req = urllib.request.Request(self.url + "/alertmanager", data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {token or self.env['OCTOLLM_EDA_TOKEN']}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)


@pytest.fixture()
def rulebook(testbed_env, tmp_path):
    rb = Rulebook(testbed_env, tmp_path, str(tmp_path / "ledger.sqlite3")).start()
    yield rb
    rb.stop()


def am_post(env, alerts):
    """Push alerts to the real Alertmanager (as Prometheus does)."""
    req = urllib.request.Request(env["OCTOLLM_ALERTMANAGER_URL"] + "/api/v2/alerts", data=json.dumps(alerts).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def now_iso(offset=0.0):
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alert(labels, annotations=None, ends=None):
    out = {"labels": labels, "annotations": annotations or {"summary": "test"}, "startsAt": now_iso(-30),
           "generatorURL": "http://prometheus.test/graph"}
    out["endsAt"] = ends or now_iso(3600)
    return out


def incidents(ledger, target=None):
    with ledger_mod.Ledger.open(ledger) as lg:
        return lg.incidents(target_key=target)


def timeline(ledger, iid):
    with ledger_mod.Ledger.open(ledger) as lg:
        return lg.timeline(iid)


def dispatched(ledger, target):
    """(procedure, incident) for the target once its playbook recorded the dispatch."""
    for inc in incidents(ledger, target):
        notes = [e for e in timeline(ledger, inc["id"]) if e["kind"] == "note" and "dispatched to" in e["summary"]]
        if notes:
            return notes[0]["data"]["procedure"], inc
    return None


def ns():
    return f"rb-{uuid.uuid4().hex[:8]}"


def test_alerts_reach_the_right_procedure_through_alertmanager(testbed_env, rulebook):
    space = ns()
    cases = [
        ({"alertname": "PodCrashLoopBackOff", "severity": "critical", "namespace": space, "pod": "web-1",
          "owner_kind": "Deployment", "owner_name": "web", "node": "node-000001"}, f"deployment/{space}/web",
         "pod_crashloop"),
        ({"alertname": "HighRequestLatency", "severity": "warning", "namespace": space, "service": "api",
          "owner_kind": "Deployment", "owner_name": "api"}, f"deployment/{space}/api", "high_latency"),
        ({"alertname": "PersistentVolumeClaimPending", "severity": "warning", "namespace": space,
          "persistentvolumeclaim": "data-0"}, f"pvc/{space}/data-0", "pvc_pending"),
        ({"alertname": "CertificateExpiringInSevenDays", "severity": "critical", "namespace": space,
          "name": "tls"}, f"certificate/{space}/tls", "cert_expiring"),
    ]
    am_post(testbed_env, [alert(labels) for labels, _t, _p in cases])
    for labels, target, procedure in cases:
        got = wait(f"{labels['alertname']} dispatched", lambda t=target: dispatched(rulebook.ledger, t), 90, 1)
        assert got[0] == procedure, (labels["alertname"], got[0])
        assert got[1]["procedure"] == procedure
        assert got[1]["severity"] == labels["severity"]


def payload(alerts, status="firing"):
    return {"version": "4", "status": status, "receiver": "eda", "groupKey": "{}:{alertname=\"X\"}",
            "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://am", "alerts": alerts}


def wire_alert(fp, labels, status="firing", starts="2026-11-29T03:10:03.457863357Z"):
    return {"status": status, "labels": labels, "annotations": {"summary": "s"}, "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-29T03:20:03.1Z",
            "generatorURL": "http://p", "fingerprint": fp}


def test_resent_groups_and_ha_duplicates_run_nothing_twice(rulebook):
    space = ns()
    labels = {"alertname": "HighErrorRate", "severity": "critical", "namespace": space, "service": "cart",
              "owner_kind": "Deployment", "owner_name": "cart"}
    a = wire_alert(uuid.uuid4().hex[:16], labels)
    first = rulebook.post(payload([a]))
    # the group again (Alertmanager re-sends whole groups) and an HA twin delivery
    again = rulebook.post(payload([a]))
    twin = rulebook.post(payload([a]))
    assert (first["new"], again["new"], twin["new"]) == (1, 0, 0)
    assert again["duplicates"] == 1 and twin["duplicates"] == 1
    target = f"deployment/{space}/cart"
    wait("the dispatch", lambda: dispatched(rulebook.ledger, target), 60, 1)
    time.sleep(5)  # give any duplicate run time to show up
    incs = incidents(rulebook.ledger, target)
    assert len(incs) == 1
    notes = [e for e in timeline(rulebook.ledger, incs[0]["id"]) if e["kind"] == "note"]
    assert len(notes) == 1
    with ledger_mod.Ledger.open(rulebook.ledger) as lg:
        row = lg.alerts(fingerprint=a["fingerprint"])[0]
    assert row["delivery_count"] == 3 and row["state"] == "handled"


def test_a_storm_on_one_workload_is_one_run(rulebook):
    space = ns()
    alerts = [wire_alert(uuid.uuid4().hex[:16], {
        "alertname": "PodCrashLoopBackOff", "severity": "critical", "namespace": space, "pod": f"web-{i}",
        "container": "web", "owner_kind": "Deployment", "owner_name": "web"}) for i in range(40)]
    assert rulebook.post(payload(alerts))["new"] == 40
    target = f"deployment/{space}/web"
    wait("the dispatch", lambda: dispatched(rulebook.ledger, target), 60, 1)
    time.sleep(5)
    incs = incidents(rulebook.ledger, target)
    assert len(incs) == 1
    with ledger_mod.Ledger.open(rulebook.ledger) as lg:
        linked = lg.incident_alerts(incs[0]["id"])
    assert len(linked) == 40  # the one run took every firing alert of its target
    assert len([e for e in timeline(rulebook.ledger, incs[0]["id"]) if e["kind"] == "note"]) == 1


def test_resolved_alert_runs_only_the_close_path(testbed_env, rulebook):
    space = ns()
    labels = {"alertname": "DeploymentReplicasMismatch", "severity": "warning", "namespace": space,
              "deployment": "worker", "owner_kind": "Deployment", "owner_name": "worker"}
    am_post(testbed_env, [alert(labels)])
    target = f"deployment/{space}/worker"
    _proc, inc = wait("the dispatch", lambda: dispatched(rulebook.ledger, target), 90, 1)
    assert inc["status"] == "open"
    am_post(testbed_env, [alert(labels, ends=now_iso(-1))])  # Alertmanager now sends `resolved`
    closed = wait("the incident closed", lambda: [i for i in incidents(rulebook.ledger, target)
                                                  if i["status"] == "closed"], 90, 1)
    kinds = [e["kind"] for e in timeline(rulebook.ledger, closed[0]["id"])]
    assert "resolved" in kinds and "close" in kinds
    assert kinds.count("note") == 1  # the procedure was not dispatched again


def test_unknown_alerts_and_invalid_targets_go_to_notify_only(rulebook):
    space = ns()
    unknown = wire_alert(uuid.uuid4().hex[:16], {"alertname": "SomethingNew", "severity": "warning",
                                                 "namespace": space, "deployment": "x"})
    hostile = wire_alert(uuid.uuid4().hex[:16], {"alertname": "PodCrashLoopBackOff", "severity": "critical",
                                                 "namespace": space, "pod": "../../etc/passwd; rm -rf /",
                                                 "owner_kind": "Deployment", "owner_name": "$(id)"})
    rulebook.post(payload([unknown, hostile]))

    def notified(a):
        with ledger_mod.Ledger.open(rulebook.ledger) as lg:
            row = lg.alerts(fingerprint=a["fingerprint"])[0]
            if not row["incident_id"]:
                return None
            notes = [e for e in lg.timeline(row["incident_id"]) if e["kind"] == "notification"]
            return (row, lg.get_incident(row["incident_id"])) if notes else None
    for a in (unknown, hostile):
        row, inc = wait(f"{a['labels']['alertname']} notified", lambda a=a: notified(a), 60, 1)
        assert inc["procedure"] == "notify_only" and row["state"] == "handled"
        assert any("no procedure handles this alert" in e["summary"] for e in timeline(rulebook.ledger, inc["id"]))
    # the hostile one names no valid target: kept verbatim, its incident is keyed by its fingerprint
    row, inc = notified(hostile)
    assert row["target_key"] is None and row["labels"]["pod"] == "../../etc/passwd; rm -rf /"
    assert inc["target_key"] == f"alert/{hostile['fingerprint']}"


def test_hostile_label_stays_data_end_to_end(testbed_env, rulebook, tmp_path):
    space = ns()
    canary = tmp_path / "pwned"
    evil = "{{ lookup('ansible.builtin.pipe', 'touch " + str(canary) + "') }}"
    labels = {"alertname": "HighErrorRate", "severity": "critical", "namespace": space, "service": "shop",
              "owner_kind": "Deployment", "owner_name": "shop", "evil": evil, "path": "{% raw %}x"}
    am_post(testbed_env, [alert(labels, {"summary": evil, "description": "{# comment #}"})])
    target = f"deployment/{space}/shop"
    _proc, inc = wait("the dispatch", lambda: dispatched(rulebook.ledger, target), 90, 1)
    with ledger_mod.Ledger.open(rulebook.ledger) as lg:
        stored = lg.incident_alerts(inc["id"])[0]
        first = lg.timeline(inc["id"])[0]
    assert not canary.exists()
    # the ledger and the incident keep the text exactly as it came
    assert stored["labels"]["evil"] == evil and stored["annotations"]["summary"] == evil
    assert first["data"]["labels"]["evil"] == evil


def test_correlated_scenarios_go_to_the_lead_procedure(rulebook):
    space = ns()
    node = "node-000002"
    lead1 = wire_alert(uuid.uuid4().hex[:16], {"alertname": "NodeNotReady", "severity": "critical", "node": node,
                                               "condition": "Ready", "status": "false"})
    lead2 = wire_alert(uuid.uuid4().hex[:16], {"alertname": "DatabaseConnectionPoolExhausted", "severity": "critical",
                                               "namespace": space, "service": "orders", "database": "postgres"})
    lead3 = wire_alert(uuid.uuid4().hex[:16], {"alertname": "LowCacheHitRate", "severity": "warning",
                                               "namespace": space, "cache": f"{space}/redis"})
    rulebook.post(payload([lead1, lead2, lead3]))
    for target in (f"node/{node}", f"database/{space}/postgres", f"cache/{space}/redis"):
        wait(f"{target} dispatched", lambda t=target: dispatched(rulebook.ledger, t), 90, 1)
    followers = [
        wire_alert(uuid.uuid4().hex[:16], {"alertname": "PodCrashLoopBackOff", "severity": "critical",
                                           "namespace": space, "pod": "api-1", "owner_kind": "Deployment",
                                           "owner_name": "api", "node": node}),
        wire_alert(uuid.uuid4().hex[:16], {"alertname": "HighErrorRate", "severity": "critical", "namespace": space,
                                           "service": "orders", "owner_kind": "Deployment", "owner_name": "orders"}),
        wire_alert(uuid.uuid4().hex[:16], {"alertname": "HighLatency", "severity": "critical", "namespace": space,
                                           "service": "search", "owner_kind": "Deployment", "owner_name": "search"}),
    ]
    rulebook.post(payload(followers))
    leads = {f"node/{node}": ("S1", followers[0]), f"database/{space}/postgres": ("S2", followers[1]),
             f"cache/{space}/redis": ("S3", followers[2])}
    for target, (scenario, follower) in leads.items():
        def joined(t=target, s=scenario):
            for inc in incidents(rulebook.ledger, t):
                hits = [e for e in timeline(rulebook.ledger, inc["id"]) if e["kind"] == "correlation"
                        and e["data"].get("scenario") == s]
                if hits:
                    return hits
            return None
        hit = wait(f"{scenario} joined to {target}", joined, 90, 1)
        assert hit[0]["data"]["alerts"][0]["alertname"] == follower["labels"]["alertname"]
    # no follower got its own procedure
    for follower in followers:
        own = f"deployment/{space}/{follower['labels']['owner_name']}"
        assert incidents(rulebook.ledger, own) == []


def test_a_runner_killed_after_the_ack_still_handles_the_alert(testbed_env, tmp_path):
    ledger = str(tmp_path / "ledger.sqlite3")
    rb = Rulebook(testbed_env, tmp_path, ledger).start()
    space = ns()
    labels = {"alertname": "HighNodeMemoryUsage", "severity": "warning", "node": "node-000003",
              "instance": "192.0.2.13:9100"}
    labels2 = {"alertname": "HPAScaledUp", "severity": "info", "namespace": space,
               "horizontalpodautoscaler": "web", "direction": "up"}
    a, b = wire_alert(uuid.uuid4().hex[:16], labels), wire_alert(uuid.uuid4().hex[:16], labels2)
    try:
        # SIGSTOP the engine right after the acknowledgement would be the sharpest cut; a
        # SIGKILL straight after the 200 is what a crash looks like
        answer = rb.post(payload([a, b]))
        assert answer["new"] == 2
        rb.stop(signal.SIGKILL)
        with ledger_mod.Ledger.open(ledger) as lg:
            states = {lg.alerts(fingerprint=x["fingerprint"])[0]["state"] for x in (a, b)}
        assert states <= {"received", "queued"}  # stored, not handled yet
        rb = Rulebook(testbed_env, tmp_path, ledger).start()
        for target in ("node/node-000003", f"hpa/{space}/web"):
            wait(f"{target} handled after the restart", lambda t=target: dispatched(ledger, t), 90, 1)
        time.sleep(3)
        for target in ("node/node-000003", f"hpa/{space}/web"):
            incs = incidents(ledger, target)
            assert len(incs) == 1
            assert len([e for e in timeline(ledger, incs[0]["id"]) if e["kind"] == "note"]) == 1
    finally:
        rb.stop()


def test_requests_without_the_token_are_refused(rulebook):
    space = ns()
    a = wire_alert(uuid.uuid4().hex[:16], {"alertname": "HighErrorRate", "namespace": space, "service": "x"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        rulebook.post(payload([a]), token="wrong")
    assert exc.value.code == 401
    with ledger_mod.Ledger.open(rulebook.ledger) as lg:
        assert lg.alerts(fingerprint=a["fingerprint"]) == []
