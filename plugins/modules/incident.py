#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: incident
short_description: Open, record, escalate and close alert-response incidents in the ledger
version_added: 0.1.0
description:
  - Runs the runbook's response workflow on the incident ledger (SQLite or PostgreSQL).
  - C(state=open) loads the alert by its ledger id (as the rulebook passes it) or builds one for a
    procedure started by hand, validates its target, finds or creates the one open incident of that
    target, acknowledges it, starts the SLA clocks, links every firing alert of the target, takes the
    per-target lock and writes the first timeline entries (the alert, recent rollouts in the namespace,
    related firing alerts).
  - C(state=record) appends a timeline entry (evidence, diagnosis, action, verification, note...).
    A diagnosis also sets the incident's cause.
  - C(state=escalate) raises the escalation level (never lowers it).
  - C(state=close) closes on a verified fix (or when forced), with time to resolve and the SLA verdict;
    it refuses while the incident's alerts still fire and the fix is not verified.
  - C(state=resolve) records a resolved alert from Alertmanager and closes the incident when none of its
    alerts fire any more.
  - C(state=release) gives the per-target lock back.
  - Alert labels are untrusted data; they are returned as module results, which ansible-core never
    evaluates as templates.
author:
  - OctoLLM SRE (@octollm)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Nothing is written to the ledger; the result shows the incident as it is or would be.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  state:
    description: What to do.
    type: str
    choices: [open, record, escalate, close, resolve, release]
    default: open
  ledger:
    description:
      - Ledger location, a SQLite file path or a C(postgresql://) DSN. Defaults to C($OCTOLLM_LEDGER)
        or a file under the user's state folder.
    type: str
  alert_id:
    description: Ledger id of the alert (what the rulebook passes). For C(state=open) and C(state=resolve).
    type: int
  target:
    description:
      - Target of a procedure started by hand, C(kind/namespace/name) (for example
        C(deployment/octollm-prod/orchestrator)) or C(node/<name>). Used when I(alert_id) is not given.
      - A C(pod/<namespace>/<name>) target is resolved to the pod's owning workload.
    type: str
  alertname:
    description: Alert name recorded for a procedure started by hand.
    type: str
  labels:
    description: Extra labels recorded for a procedure started by hand (for example C(service)).
    type: dict
    default: {}
  severity:
    description: Severity for a procedure started by hand.
    type: str
    choices: [critical, warning, info]
    default: warning
  procedure:
    description: The procedure (role name) handling the incident.
    type: str
  incident_key:
    description: Open the incident under this key instead of the target (a correlated scenario joins its lead).
    type: str
  related_alert_ids:
    description:
      - Ledger ids of alerts that follow this one in a multi-alert scenario (the rulebook passes the follower
        when it sends a pair to the lead procedure). They are linked to the incident and recorded as
        correlated; their own procedures are not run.
    type: list
    elements: int
    default: []
  scenario:
    description: The runbook's multi-alert scenario (S1, S2, S3) that joined I(related_alert_ids).
    type: str
  incident_id:
    description: The incident, for every state but C(open).
    type: int
  holder:
    description: Identity of this run for the per-target lock. When set, C(state=open) takes the lock.
    type: str
  lock_wait:
    description: Seconds to wait for the per-target lock before failing.
    type: float
    default: 60
  lock_ttl:
    description: Seconds after which a lock of a crashed run may be taken over.
    type: float
    default: 1800
  assess_window:
    description: Seconds back to look for rollouts when assessing (runbook step 2). C(0) skips the API read.
    type: float
    default: 7200
  sla:
    description:
      - "SLA clock overrides in seconds, for example C({critical_ack_s: 300, critical_resolve_s: 3600,
        warning_ack_s: 1800, warning_action_s: 3600, warning_resolve_s: 14400, info_review_s: 86400})
        (the runbook's values are the defaults)."
    type: dict
    default: {}
  kind:
    description: Timeline entry kind for C(state=record).
    type: str
    choices: [assess, evidence, diagnosis, guardrail, action, verification, escalation, notification, note,
              correlation, error]
  summary:
    description: One-line summary of the entry (C(state=record)) or the resolution (C(state=close)).
    type: str
  data:
    description:
      - Structured data of the entry. For a diagnosis, C(cause) and C(reasons).
      - For an action, C(verdict) (the M(octollm.alert_response.guardrail) result; C(verdicts) for actions taken
        together) and C(result) (the action task's result, or the procedure's summary with C(allowed), C(ok),
        C(changed)). The action's outcome is then journaled beside the guardrail's verdict, and a per-incident limit
        does not count an action that failed without a change.
    type: dict
    default: {}
  level:
    description: Escalation level (C(state=escalate)).
    type: str
  levels:
    description: The ordered escalation levels, lowest first.
    type: list
    elements: str
    default: [none, ticket, notify_oncall, page_oncall, page_senior, page_lead, page_vp]
  recipients:
    description: Who is notified at this level.
    type: list
    elements: str
    default: []
  reasons:
    description: Why (the criteria that applied).
    type: list
    elements: str
    default: []
  verified:
    description: The fix was verified by the procedure (C(state=close)).
    type: bool
    default: false
  force:
    description: Close even while alerts still fire (operator decision).
    type: bool
    default: false
notes:
  - The ledger is a journal of the response, not the managed system, so this module always reports
    C(changed=false); C(created), C(raised) and C(closed) say what it did. Reruns therefore stay
    idempotent as far as the cluster is concerned.
"""

EXAMPLES = r"""
- name: Open the incident for the alert the rulebook passed
  octollm.alert_response.incident:
    state: open
    alert_id: "{{ alert_id }}"
    procedure: pod_crashloop
    holder: "{{ ansible_run_id | default('manual') }}"
  register: incident_open

- name: Record the diagnosis
  octollm.alert_response.incident:
    state: record
    incident_id: "{{ incident_open.incident.id }}"
    kind: diagnosis
    summary: "cause: dependency_unavailable"
    data:
      cause: dependency_unavailable
      reasons: ["log: connection refused to postgres:5432", "Service postgres has no ready endpoints"]

- name: Close on a verified fix
  octollm.alert_response.incident:
    state: close
    incident_id: "{{ incident_open.incident.id }}"
    summary: restarted postgres, then the crashing pods; restarts stable for 60 s
    verified: true
"""

RETURN = r"""
incident:
  description: The incident after the operation.
  returned: always
  type: dict
  sample: {"id": 12, "incident_key": "deployment/octollm-prod/orchestrator", "severity": "critical",
           "status": "open", "procedure": "pod_crashloop", "acknowledged_at": 1795000000.1,
           "ack_deadline": 1795000300.1, "resolve_deadline": 1795003600.1, "cause": null}
target:
  description: The validated target.
  returned: state=open
  type: dict
  sample: {"kind": "deployment", "namespace": "octollm-prod", "name": "orchestrator",
           "key": "deployment/octollm-prod/orchestrator"}
alerts:
  description: Alerts linked to the incident (labels and annotations are data, never templates).
  returned: state=open
  type: list
  elements: dict
created:
  description: Whether C(state=open) created a new incident.
  returned: state=open
  type: bool
assessment:
  description: Recent rollouts in the target's namespace and related firing alerts.
  returned: state=open
  type: dict
raised:
  description: Whether C(state=escalate) raised the level.
  returned: state=escalate
  type: bool
closed:
  description: Whether C(state=close) or C(state=resolve) closed the incident.
  returned: state=close, state=resolve
  type: bool
sla:
  description: SLA verdict at close.
  returned: state=close
  type: dict
  sample: {"ack_met": true, "resolve_met": true, "breached": []}
"""

import os
import re
import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils import guardrails
from ansible_collections.octollm.alert_response.plugins.module_utils import incident as inc
from ansible_collections.octollm.alert_response.plugins.module_utils.ledger import Ledger, LedgerError, _redact

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
except ImportError:  # pragma: no cover - kubernetes.core is a declared dependency
    AUTH_ARG_SPEC = {}


def k8s_helpers():
    """The Kubernetes helpers, imported on first use. Only opening an incident reads the
    API; importing the client costs ~0.6 s, paid by every record/escalate/close call otherwise."""
    from ansible_collections.octollm.alert_response.plugins.module_utils import k8s  # noqa: PLC0415
    return k8s


def secret_of(location: str | None) -> list:
    """The password part of a DSN, to keep out of logs without hiding the whole result."""
    if location and "://" in location and "@" in location:
        cred = location.split("://", 1)[1].split("@", 1)[0]
        if ":" in cred:
            return [cred.split(":", 1)[1]]
    return []


def load_alert(module, ledger) -> dict:
    p = module.params
    if p["alert_id"] is not None:
        alert = ledger.get_alert(p["alert_id"])
        if alert is None:
            module.fail_json(msg=f"alert {p['alert_id']} is not in the ledger {ledger.describe()}; "
                                 "is the rulebook using the same ledger as the playbooks (alert_response_ledger)?")
        return alert
    if not p["target"]:
        module.fail_json(msg="give alert_id (from the rulebook) or target (kind/namespace/name) for a manual run")
    target = resolve_target(module, p["target"])
    labels = dict(p["labels"] or {})
    kind, ns, name = target["kind"], target["namespace"], target["name"]
    if kind == "node":
        labels["node"] = name
    elif kind in ("deployment", "statefulset", "daemonset"):
        labels.update(namespace=ns, owner_kind=kind.capitalize() if kind != "statefulset" else "StatefulSet",
                      owner_name=name)
    else:
        field = {"certificate": "name", "pvc": "persistentvolumeclaim", "hpa": "horizontalpodautoscaler",
                 "configmap": "configmap", "database": "database", "cache": "cache"}[kind]
        labels["namespace"] = ns
        labels[field] = f"{ns}/{name}" if kind == "cache" else name
    alert = inc.manual_alert(p["alertname"] or f"manual:{p['procedure'] or 'procedure'}", labels, p["severity"])
    if module.check_mode:
        return {"id": None, "alertname": alert["labels"]["alertname"], "labels": alert["labels"],
                "annotations": alert["annotations"], "severity": p["severity"], "starts_at": alert["startsAt"],
                "target_key": target["key"]}
    stored = ledger.record_alerts([alert], {"receiver": "manual"}, target_key=target["key"])[0]
    return ledger.get_alert(stored["id"])


def resolve_target(module, key: str) -> dict:
    """Validate a manual target; a pod is replaced by its owning workload."""
    try:
        if not key.startswith("pod/"):
            return inc.parse_target(key)
        parts = key.split("/")
        if len(parts) != 3:
            raise inc.IncidentError(f"invalid target {key!r}: expected pod/<namespace>/<name>")
        inc.parse_target(f"deployment/{parts[1]}/{parts[2]}")  # validates the names
    except inc.IncidentError as exc:
        module.fail_json(msg=str(exc))
    k8s = k8s_helpers()
    try:
        c = k8s.clients(module)
        pod = c.core.read_namespaced_pod(parts[2], parts[1])
        kind, name = k8s.owner_workload(c, parts[1], pod)
        if kind not in ("Deployment", "StatefulSet", "DaemonSet"):
            raise inc.IncidentError(f"pod {parts[1]}/{parts[2]} has no workload owner ({kind}); "
                                    "give the workload as target instead")
        return inc.parse_target(f"{kind.lower()}/{parts[1]}/{name}")
    except inc.IncidentError as exc:
        module.fail_json(msg=str(exc))
    except k8s.ApiException as exc:
        module.fail_json(msg=f"cannot resolve {key}: {exc.status} {exc.reason}")


def assess(module, ledger, target: dict, incident_id) -> dict:
    """Runbook step 2: recent changes in the namespace and related firing alerts."""
    p = module.params
    out = {"recent_rollouts": [], "related_alerts": []}
    if target["namespace"] and p["assess_window"] > 0:
        k8s = k8s_helpers()
        try:
            out["recent_rollouts"] = k8s.recent_rollouts(k8s.clients(module), target["namespace"], p["assess_window"])
        except k8s.ApiException as exc:
            out["rollouts_error"] = f"{exc.status} {exc.reason}"
    related = []
    for a in ledger.firing_alerts():
        labels = a["labels"]
        if a["target_key"] == target["key"]:
            continue
        if (target["namespace"] and labels.get("namespace") == target["namespace"]) or \
                (target["kind"] == "node" and labels.get("node") == target["name"]):
            related.append({"id": a["id"], "alertname": a["alertname"], "target": a["target_key"]})
    out["related_alerts"] = related[:50]
    return out


def would_be_incident(p: dict, alert: dict, target: dict) -> dict:
    """The incident a real run would open (check mode writes nothing, so it has no id)."""
    now = time.time()
    severity = (alert.get("labels") or {}).get("severity") or alert.get("severity") or p["severity"]
    started = inc._epoch(alert.get("starts_at")) or now
    deadlines = inc.sla_deadlines(severity, started, p["sla"])
    return {"id": None, "incident_key": p["incident_key"] or target["key"], "severity": severity, "status": "open",
            "procedure": p["procedure"], "target_key": target["key"], "title": f"{alert.get('alertname')} on "
            f"{target['key']}", "opened_at": now, "started_at": started, "acknowledged_at": now,
            "ack_deadline": deadlines["ack_deadline"], "resolve_deadline": deadlines["resolve_deadline"],
            "escalation_level": None, "cause": None, "data": {}}


def do_open(module, ledger) -> dict:
    p = module.params
    alert = load_alert(module, ledger)
    try:
        target = inc.parse_target(alert.get("target_key") or "")
    except inc.IncidentError as exc:
        if p["procedure"] != "notify_only":
            module.fail_json(msg=f"alert {alert.get('id')} ({alert.get('alertname')}): {exc}")
        # no procedure can act on it, but a person must hear of it: its own incident
        fp = re.sub(r"[^A-Za-z0-9._:-]", "_", str(alert.get("fingerprint")))[:64]
        target = {"kind": "alert", "namespace": None, "name": fp, "key": f"alert/{fp}"}
        alert = dict(alert, target_key=target["key"])
    if module.check_mode:
        existing = ledger.find_open_incident(p["incident_key"] or target["key"])
        return {"changed": False, "created": existing is None, "target": target,
                "incident": existing or would_be_incident(p, alert, target),
                "alerts": [inc.public_alert(alert)], "assessment": assess(module, ledger, target, None)}
    if p["holder"]:
        lock = ledger.acquire_lock(target["key"], p["holder"], ttl=p["lock_ttl"], wait=p["lock_wait"])
        if not lock["acquired"]:
            module.fail_json(msg=f"target {target['key']} is locked by run {lock['holder']} (another procedure is "
                                 f"acting on it); retry after it finishes or after {int(p['lock_ttl'])} s")
    incident, created, alerts = inc.open_incident(ledger, alert, p["procedure"], sla_overrides=p["sla"],
                                                  incident_key=p["incident_key"])
    assessment = assess(module, ledger, target, incident["id"])
    related = [ledger.get_alert(i) for i in p["related_alert_ids"]]
    related = [a for a in related if a is not None]
    if related:
        ledger.link_alerts(incident["id"], [a["id"] for a in related])
        ledger.set_alert_state([a["id"] for a in related], "handled")
        ledger.add_timeline(incident["id"], "correlation", f"scenario {p['scenario'] or '?'}: "
                            f"{len(related)} correlated alert(s) joined; their own procedures are suppressed",
                            {"scenario": p["scenario"], "alerts": [{"id": a["id"], "alertname": a["alertname"],
                                                                    "target": a["target_key"]} for a in related]})
        alerts = [inc.public_alert(a) for a in ledger.incident_alerts(incident["id"])]
    if created:
        a0 = alerts[0] if alerts else inc.public_alert(alert)
        ledger.add_timeline(incident["id"], "alert", f"alert {a0['alertname']} ({incident['severity']}) on "
                            f"{target['key']}", {"labels": a0["labels"], "annotations": a0["annotations"],
                                                 "starts_at": a0["starts_at"]})
        ledger.add_timeline(incident["id"], "assess", f"acknowledged; {len(assessment['recent_rollouts'])} recent "
                            f"rollout(s), {len(assessment['related_alerts'])} related firing alert(s)", assessment)
    return {"changed": False, "created": created, "incident": incident, "target": target, "alerts": alerts,
            "assessment": assessment}


def do_record(module, ledger) -> dict:
    p = module.params
    if module.check_mode:  # a dry run has no incident id to write to; nothing is written anyway
        return {"changed": False, "incident": ledger.get_incident(p["incident_id"]) if p["incident_id"] else None}
    for opt in ("incident_id", "kind", "summary"):
        if p[opt] is None:
            module.fail_json(msg=f"state=record needs {opt}")
    cur = ledger.get_incident(p["incident_id"])
    if cur is None:
        module.fail_json(msg=f"incident {p['incident_id']} does not exist in {ledger.describe()}")
    dedupe = p["kind"] in ("evidence", "diagnosis", "verification")
    entry = ledger.add_timeline(p["incident_id"], p["kind"], p["summary"], p["data"], dedupe=dedupe)
    if p["kind"] == "action":
        # the guardrail journaled the action(s) before they ran (data.verdict, or data.verdicts
        # for actions taken together, like cordon and drain); the outcome goes beside each (a
        # per-incident limit does not count an action that failed without changing anything)
        outcome = guardrails.action_outcome(p["data"].get("result"))
        for verdict in [p["data"].get("verdict")] + list(p["data"].get("verdicts") or []) if outcome else []:
            if isinstance(verdict, dict) and verdict.get("action_id"):
                ledger.set_action_result(verdict["action_id"], outcome)
    if p["kind"] == "diagnosis" and p["data"].get("cause"):
        cur = ledger.update_incident(p["incident_id"], cause=p["data"]["cause"])
    return {"changed": False, "incident": cur, "entry_id": entry}


def do_escalate(module, ledger) -> dict:
    p = module.params
    if p["incident_id"] is None or not p["level"]:
        module.fail_json(msg="state=escalate needs incident_id and level")
    if p["level"] not in p["levels"]:
        module.fail_json(msg=f"level {p['level']!r} is not one of {p['levels']}")
    if module.check_mode:
        cur = ledger.get_incident(p["incident_id"])
        current = (cur or {}).get("escalation_level") or p["levels"][0]
        raised = p["levels"].index(p["level"]) > p["levels"].index(current) if current in p["levels"] else True
        return {"changed": False, "raised": raised, "incident": cur}
    incident, raised = inc.escalate(ledger, p["incident_id"], p["level"], p["levels"], p["recipients"], p["reasons"])
    return {"changed": False, "raised": raised, "incident": incident}


def do_close(module, ledger) -> dict:
    p = module.params
    if p["incident_id"] is None:
        module.fail_json(msg="state=close needs incident_id")
    if module.check_mode:
        cur = ledger.get_incident(p["incident_id"])
        return {"changed": False, "closed": bool(cur and cur["status"] != "closed"), "incident": cur, "sla": None}
    try:
        incident, changed, verdict = inc.close_incident(ledger, p["incident_id"], p["summary"] or "closed",
                                                        p["verified"], force=p["force"])
    except inc.IncidentError as exc:
        module.fail_json(msg=str(exc))
    return {"changed": False, "closed": changed, "incident": incident, "sla": verdict}


def do_resolve(module, ledger) -> dict:
    """A resolved notification: record it; close the incident when nothing of it fires."""
    p = module.params
    alert = ledger.get_alert(p["alert_id"]) if p["alert_id"] is not None else None
    if alert is None or alert["status"] != "resolved":
        module.fail_json(msg=f"alert {p['alert_id']} is not a resolved alert in {ledger.describe()}")
    firing = ledger.alerts(fingerprint=alert["fingerprint"], status="firing", limit=5)
    incident_id = next((a["incident_id"] for a in firing if a.get("incident_id")), None)
    if incident_id is None:
        return {"changed": False, "incident": None, "msg": "no incident was opened for this alert"}
    if module.check_mode:
        return {"changed": False, "closed": False, "incident": ledger.get_incident(incident_id)}
    # the rulebook runs this once per target per window: take every resolved alert of the
    # target that arrived meanwhile, so none of them is handed over again after a restart
    resolved = [a["id"] for a in ledger.alerts(target_key=alert["target_key"], status="resolved", limit=10000)
                if a["state"] != "handled"] if alert["target_key"] else []
    ledger.link_alerts(incident_id, sorted(set(resolved) | {alert["id"]}))
    ledger.set_alert_state(sorted(set(resolved) | {alert["id"]}), "handled")
    ledger.add_timeline(incident_id, "resolved", f"alert {alert['alertname']} resolved (ends {alert['ends_at']})",
                        {"fingerprint": alert["fingerprint"]})
    cur = ledger.get_incident(incident_id)
    if cur["status"] == "closed" or ledger.firing_alerts(target_key=cur["target_key"]):
        return {"changed": False, "closed": False, "incident": cur}
    incident, changed, verdict = inc.close_incident(ledger, incident_id, cur["data"].get("resolution") or
                                                    "alert resolved", bool(cur["data"].get("verified")), force=True)
    return {"changed": False, "closed": changed, "incident": incident, "sla": verdict}


def do_release(module, ledger) -> dict:
    p = module.params
    if not p["holder"] or not p["target"]:
        module.fail_json(msg="state=release needs holder and target")
    if module.check_mode:
        return {"changed": False}
    return {"changed": False, "released": ledger.release_lock(p["target"], p["holder"])}


def main():
    spec = dict(
        state=dict(type="str", default="open", choices=["open", "record", "escalate", "close", "resolve", "release"]),
        ledger=dict(type="str"),
        alert_id=dict(type="int"), target=dict(type="str"), alertname=dict(type="str"),
        labels=dict(type="dict", default={}),
        severity=dict(type="str", default="warning", choices=["critical", "warning", "info"]),
        procedure=dict(type="str"), incident_key=dict(type="str", no_log=False), incident_id=dict(type="int"),
        related_alert_ids=dict(type="list", elements="int", default=[]), scenario=dict(type="str"),
        holder=dict(type="str"), lock_wait=dict(type="float", default=60), lock_ttl=dict(type="float", default=1800),
        assess_window=dict(type="float", default=7200), sla=dict(type="dict", default={}),
        kind=dict(type="str", choices=["assess", "evidence", "diagnosis", "guardrail", "action", "verification",
                                       "escalation", "notification", "note", "correlation", "error"]),
        summary=dict(type="str"), data=dict(type="dict", default={}),
        level=dict(type="str"),
        levels=dict(type="list", elements="str",
                    default=["none", "ticket", "notify_oncall", "page_oncall", "page_senior", "page_lead", "page_vp"]),
        recipients=dict(type="list", elements="str", default=[]),
        reasons=dict(type="list", elements="str", default=[]),
        verified=dict(type="bool", default=False), force=dict(type="bool", default=False),
    )
    spec.update(AUTH_ARG_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    if module.check_mode and p["state"] in ("record", "escalate", "close", "release") and p["incident_id"] is None \
            and not (p["state"] == "release" and p["holder"]):
        # a dry run opened no incident, so there is nothing to write to (and nothing is written)
        module.exit_json(changed=False, incident=None, raised=False, closed=False)
    location = p["ledger"] or os.environ.get("OCTOLLM_LEDGER")
    module.no_log_values.update(secret_of(location))
    try:
        with Ledger.open(location) as ledger:
            result = {"open": do_open, "record": do_record, "escalate": do_escalate, "close": do_close,
                      "resolve": do_resolve, "release": do_release}[module.params["state"]](module, ledger)
            result["ledger"] = ledger.describe()
    except (LedgerError, inc.IncidentError) as exc:
        module.fail_json(msg=_redact(str(exc)))
    except Exception as exc:  # an unexpected failure still names the ledger, not its password
        module.fail_json(msg=f"incident {module.params['state']} failed: {_redact(str(exc))}",
                         exception=_redact(traceback.format_exc()))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
