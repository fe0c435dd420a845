"""The incident lifecycle through the real modules and role, with the ledger in SQLite and
in the test bed's PostgreSQL: open -> record -> guardrail refusal -> escalate -> notify ->
close -> review; resolved alerts close; check mode writes nothing."""
from __future__ import annotations

import json
import subprocess
import textwrap
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# through the collection's import path (tests/conftest.py): plugins/module_utils on sys.path
# would shadow the redis package with module_utils/redis.py
from ansible_collections.octollm.alert_response.plugins.module_utils import ledger as ledger_mod  # noqa: E402

pytestmark = pytest.mark.testbed

PLAYBOOK = textwrap.dedent("""
    - name: Incident lifecycle
      hosts: localhost
      gather_facts: false
      vars:
        alert_response_target: "deployment/{{ ns }}/checkout"
        alert_response_alertname: HighErrorRate
        alert_response_severity: critical
        alert_response_procedure: high_error_rate
        alert_response_mode: remediate
        incident_notify_sinks:
          - {name: chat, type: slack, url: "{{ sinks }}/{{ tag }}-slack", min_level: notify_oncall}
          - {name: pager, type: pagerduty, url: "{{ sinks }}/{{ tag }}-pd", routing_key: "rk-{{ tag }}",
             min_level: page_oncall}
      tasks:
        - name: Name the run
          ansible.builtin.set_fact:
            incident_holder: "{{ tag }}"
        - name: Open
          ansible.builtin.include_role:
            name: octollm.alert_response.incident
            tasks_from: open
        - name: A protected namespace refuses the restart
          octollm.alert_response.guardrail:
            action: rollout_restart
            target_key: deployment/kube-system/coredns
            namespace: kube-system
            incident_id: "{{ incident.id }}"
            procedure: high_error_rate
            mode: remediate
            ledger: "{{ alert_response_ledger }}"
          register: verdict
        - name: The workflow hands the refusal to the escalation
          ansible.builtin.set_fact:
            alert_response_outcome:
              cause: undetermined
              verified: false
              summary: nothing verified
              refused: ["{{ verdict }}"]
              escalation_facts: {error_rate: 0.15}
        - name: Escalate and notify
          ansible.builtin.include_role:
            name: octollm.alert_response.incident
            tasks_from: escalate
        - name: Show what was decided
          ansible.builtin.debug:
            var: incident_escalation
        - name: Release
          octollm.alert_response.incident:
            state: release
            ledger: "{{ alert_response_ledger }}"
            target: "{{ incident_target.key }}"
            holder: "{{ incident_holder }}"
""")


def playbook(testbed_env, tmp_path, ledger, extra=None, check=False):
    pb = tmp_path / "lifecycle.yml"
    pb.write_text(PLAYBOOK)
    tag = uuid.uuid4().hex[:8]
    evars = {"alert_response_ledger": ledger, "ns": f"life-{tag}", "tag": tag,
             "sinks": testbed_env["OCTOLLM_SIMULATOR_URL"] + "/sinks", **(extra or {})}
    cmd = [str(REPO / ".venv/bin/ansible-playbook"), str(pb), "-e", json.dumps(evars)]
    if check:
        cmd.append("--check")
    res = subprocess.run(cmd, env=testbed_env, cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    return tag, evars["ns"], res.stdout


def sink(testbed_env, name):
    with urllib.request.urlopen(f"{testbed_env['OCTOLLM_SIMULATOR_URL']}/sinks/{name}", timeout=5) as r:
        return json.load(r)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_location(request, testbed, tmp_path):
    return str(tmp_path / "ledger.sqlite3") if request.param == "sqlite" else testbed["OCTOLLM_PG_LEDGER_DSN"]


def test_refusal_reaches_the_record_and_the_receivers(testbed_env, tmp_path, ledger_location):
    tag, ns, _result = playbook(testbed_env, tmp_path, ledger_location)
    with ledger_mod.Ledger.open(ledger_location) as lg:
        inc = lg.incidents(target_key=f"deployment/{ns}/checkout")[0]
        actions = lg.actions(incident_id=inc["id"])
        timeline = lg.timeline(inc["id"])
    # the refusal is in the ledger with the rule that refused it
    assert [(a["action"], a["verdict"], a["rule"]) for a in actions] == [("rollout_restart", "refused", "protected_namespace")]
    assert "kube-system" in actions[0]["reason"]
    # a refused action on a critical incident pages on-call at least
    assert inc["escalation_level"] == "page_oncall"
    kinds = [e["kind"] for e in timeline]
    assert kinds[:2] == ["alert", "assess"] and "escalation" in kinds and "notification" in kinds
    esc = next(e for e in timeline if e["kind"] == "escalation")
    assert any("guardrails refused rollout_restart" in r for r in esc["data"]["reasons"])
    # both receivers got it; the page carries the routing key and the incident's dedup key
    chat, pages = sink(testbed_env, f"{tag}-slack"), sink(testbed_env, f"{tag}-pd")
    assert len(chat) == 1 and "guardrails refused rollout_restart" in chat[0]["body"]["text"]
    assert len(pages) == 1 and pages[0]["body"]["routing_key"] == f"rk-{tag}"
    assert pages[0]["body"]["dedup_key"] == f"octollm-incident-{inc['id']}"
    assert pages[0]["body"]["payload"]["severity"] == "critical"


def test_check_mode_writes_nothing(testbed_env, tmp_path, ledger_location):
    with ledger_mod.Ledger.open(ledger_location) as lg:
        before = (len(lg.incidents(limit=100000)), len(lg.actions()), len(lg.alerts(limit=100000)))
    tag, ns, out = playbook(testbed_env, tmp_path, ledger_location, check=True)
    with ledger_mod.Ledger.open(ledger_location) as lg:
        assert lg.incidents(target_key=f"deployment/{ns}/checkout") == []
        after = (len(lg.incidents(limit=100000)), len(lg.actions()), len(lg.alerts(limit=100000)))
    assert after == before
    assert sink(testbed_env, f"{tag}-slack") == [] and sink(testbed_env, f"{tag}-pd") == []


def test_resolved_alert_closes_the_incident_and_drafts_the_review(testbed_env, tmp_path, ledger_location):
    """What the rulebook's resolved path does: Alertmanager's firing and resolved
    notifications in the ledger, then the alert_resolved playbook."""
    fp = uuid.uuid4().hex[:16]
    ns = f"res-{fp[:6]}"
    labels = {"alertname": "HighErrorRate", "severity": "critical", "namespace": ns, "service": "cart",
              "owner_kind": "Deployment", "owner_name": "cart"}
    firing = {"fingerprint": fp, "startsAt": "2026-11-29T03:10:03.457863357Z", "status": "firing",
              "labels": labels, "annotations": {"summary": "cart answers 30% 5xx"}, "endsAt": "0001-01-01T00:00:00Z"}
    with ledger_mod.Ledger.open(ledger_location) as lg:
        fid = lg.record_alerts([firing])[0]["id"]
    review_dir = tmp_path / "reviews"
    env = dict(testbed_env, OCTOLLM_LEDGER=ledger_location)
    common = ["-e", json.dumps({"alert_response_ledger": ledger_location, "incident_review_dir": str(review_dir)})]

    def run(pb, alert_id):
        res = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), pb, "-e", f"alert_id={alert_id}", *common],
                             env=env, cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
        assert res.returncode == 0, res.stdout[-3000:]
        return res.stdout

    # open the incident as the procedure's workflow would (its first step), then release
    pb = tmp_path / "open.yml"
    pb.write_text(textwrap.dedent("""
        - hosts: localhost
          gather_facts: false
          tasks:
            - octollm.alert_response.incident:
                state: open
                ledger: "{{ alert_response_ledger }}"
                alert_id: "{{ alert_id }}"
                procedure: high_error_rate
                assess_window: 0
    """))
    run(str(pb), fid)
    resolved = dict(firing, status="resolved", endsAt="2026-11-29T03:20:03.1Z")
    with ledger_mod.Ledger.open(ledger_location) as lg:
        rid = lg.record_alerts([resolved])[0]["id"]
    run("octollm.alert_response.alert_resolved", rid)
    with ledger_mod.Ledger.open(ledger_location) as lg:
        inc = lg.incidents(target_key=f"deployment/{ns}/cart")[0]
        kinds = [e["kind"] for e in lg.timeline(inc["id"])]
    assert inc["status"] == "closed" and inc["closed_at"] is not None
    assert "resolved" in kinds and kinds[-1] in ("close", "note")
    review = (review_dir / f"incident-{inc['id']}.md").read_text()
    for section in ("## Summary", "## Timeline", "## Root Cause", "## Impact", "## Resolution",
                    "## Contributing Factors", "## Action Items", "## Lessons Learned"):
        assert section in review
    # a second resolved delivery changes nothing
    run("octollm.alert_response.alert_resolved", rid)
    with ledger_mod.Ledger.open(ledger_location) as lg:
        assert lg.get_incident(inc["id"])["closed_at"] == inc["closed_at"]


def test_incident_report_prints_markdown(testbed_env, tmp_path):
    location = str(tmp_path / "ledger.sqlite3")
    tag, ns, _result = playbook(testbed_env, tmp_path, location)
    with ledger_mod.Ledger.open(location) as lg:
        iid = lg.incidents()[0]["id"]
    res = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "octollm.alert_response.incident_report",
                          "-e", f"incident={iid}", "-e", f"alert_response_ledger={location}"],
                         env=testbed_env, cwd=REPO, capture_output=True, text=True, check=False, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:]
    assert f"# Incident {iid}: HighErrorRate on deployment/{ns}/checkout" in res.stdout
    assert "| Time (UTC) | Action | Mode | Verdict | Rule | Result |" in res.stdout
