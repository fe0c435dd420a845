#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: alert_history_info
short_description: What the ledger remembers about a target or a namespace - alerts, incidents, actions - over a window
version_added: 0.1.0
description:
  - Reads the incident ledger for the history a procedure needs and the Kubernetes API does not keep, for
    example how often a container was OOMKilled in the last hour (runbook section 10, escalate after more than
    3), what a ConfigMap looked like the last time it was recorded (section 16), or which critical and warning
    alerts fired after a rollout (section 14, "monitor for related alerts").
  - Alerts of O(target) and/or of O(namespace) (alert label C(namespace)) received within O(since_s), optionally
    only some O(alertnames) and O(severities); earlier incidents of O(target) with their newest timeline entry
    of each of O(timeline_kinds); the guardrail verdicts recorded for O(target) within the window.
  - With O(watch), waits up to O(watch.timeout) seconds for a new matching alert (received after the module
    started) and returns as soon as one arrives - the runbook's "monitor for related alerts" after a change.
  - Read-only; alert labels are returned as data.
options:
  ledger:
    description:
      - Ledger location, a SQLite file path or a C(postgresql://) DSN. Default is E(OCTOLLM_LEDGER), else
        C(~/.local/state/octollm-alert-response/ledger.sqlite3).
    type: str
  target:
    description: The target key (C(deployment/<ns>/<name>), C(configmap/<ns>/<name>) ...).
    type: str
  namespace:
    description: Also alerts whose C(namespace) label is this namespace (related alerts of other targets).
    type: str
  alertnames:
    description: Only alerts with these names.
    type: list
    elements: str
    default: []
  severities:
    description: Only alerts with these severities (for example V(critical) and V(warning)).
    type: list
    elements: str
    default: []
  statuses:
    description: Only alerts with these statuses.
    type: list
    elements: str
    choices: [firing, resolved]
    default: [firing]
  since_s:
    description: The window, in seconds back from now.
    type: float
    default: 3600
  exclude_incident:
    description: Leave this incident (the current one) out of RV(incidents) and its alerts out of RV(alerts).
    type: int
  action_targets:
    description:
      - More target keys whose guardrail verdicts are returned in RV(actions) (for example the consumers of a
        ConfigMap, whose configuration another procedure may have changed).
    type: list
    elements: str
    default: []
  timeline_kinds:
    description: For each earlier incident of O(target), return the newest timeline entry of each of these kinds.
    type: list
    elements: str
    default: []
  incidents_limit:
    description: At most this many earlier incidents (newest first).
    type: int
    default: 20
  watch:
    description:
      - Wait for a new matching alert (received after the module started). Not in check mode.
    type: dict
    suboptions:
      timeout:
        description: Seconds to wait.
        type: float
        required: true
      interval:
        description: Seconds between two reads of the ledger.
        type: float
        default: 5
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only; O(watch) reads once instead of waiting.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - psycopg >= 3 (PostgreSQL ledger only)
seealso:
  - module: octollm.alert_response.incident_info
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: PodOOMKilled alerts of the Deployment in the last hour (runbook section 10)
  octollm.alert_response.alert_history_info:
    target: deployment/octollm-prod/orchestrator
    alertnames: [PodOOMKilled]
    since_s: 3600
  register: pod_oomkilled_history

- name: The ConfigMap's earlier incidents with their recorded evidence
  octollm.alert_response.alert_history_info:
    target: configmap/octollm-prod/orchestrator-config
    since_s: 2592000
    exclude_incident: "{{ incident.id }}"
    timeline_kinds: [evidence]

- name: Watch 10 minutes for critical or warning alerts in the namespace after a rollout
  octollm.alert_response.alert_history_info:
    namespace: octollm-prod
    severities: [critical, warning]
    since_s: 600
    watch:
      timeout: 600
      interval: 15
"""

RETURN = r"""
alerts:
  description: Matching alerts, newest first (labels are data).
  returned: always
  type: list
  elements: dict
  sample: [{id: 12, alertname: PodOOMKilled, severity: warning, status: firing, target: deployment/shop/api,
            starts_at: "2026-11-29T10:00:00Z", received_at: 1795900000.0, labels: {pod: api-7d9f8c-xk2p9}}]
count:
  description: How many alerts matched.
  returned: always
  type: int
  sample: 2
incidents:
  description: Earlier incidents of O(target) within the window, newest first, with C(latest) timeline entries per kind.
  returned: when target is given
  type: list
  elements: dict
  sample: [{id: 7, status: closed, cause: oom, opened_at: 1795890000.0, closed_at: 1795890300.0,
            latest: {evidence: {summary: "...", data: {}}}}]
actions:
  description: Guardrail verdicts recorded for O(target) and O(action_targets) within the window (target_key, action,
    verdict, rule, mode, at, params), oldest first.
  returned: when target is given
  type: list
  elements: dict
watch:
  description: How the watch went (C(new) alerts that arrived while watching).
  returned: when O(watch) is set
  type: dict
  sample: {waited_s: 12.1, new: 1, timed_out: false}
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.ledger import Ledger, LedgerError, _redact

ALERT_FIELDS = ("id", "alertname", "severity", "status", "target_key", "starts_at", "received_at", "incident_id",
                "fingerprint")


def argument_spec():
    return dict(
        ledger=dict(type="str"),
        target=dict(type="str"),
        namespace=dict(type="str"),
        alertnames=dict(type="list", elements="str", default=[]),
        severities=dict(type="list", elements="str", default=[]),
        statuses=dict(type="list", elements="str", default=["firing"], choices=["firing", "resolved"]),
        since_s=dict(type="float", default=3600),
        exclude_incident=dict(type="int"),
        action_targets=dict(type="list", elements="str", default=[]),
        timeline_kinds=dict(type="list", elements="str", default=[]),
        incidents_limit=dict(type="int", default=20),
        watch=dict(type="dict", options=dict(timeout=dict(type="float", required=True),
                                             interval=dict(type="float", default=5))),
    )


def matching_alerts(ledger, p, since) -> list:
    """Alerts of the target and/or the namespace since ``since`` matching the filters."""
    rows = {}
    if p["target"]:
        for a in ledger.alerts(target_key=p["target"], since=since):
            rows[a["id"]] = a
    if p["namespace"]:
        for a in ledger.alerts(since=since):
            if (a.get("labels") or {}).get("namespace") == p["namespace"]:
                rows[a["id"]] = a
    out = []
    for a in sorted(rows.values(), key=lambda a: -a["id"]):
        if p["alertnames"] and a["alertname"] not in p["alertnames"]:
            continue
        if p["severities"] and (a.get("severity") or (a.get("labels") or {}).get("severity")) not in p["severities"]:
            continue
        if a["status"] not in p["statuses"]:
            continue
        if p["exclude_incident"] is not None and a.get("incident_id") == p["exclude_incident"]:
            continue
        item = {k: a.get(k) for k in ALERT_FIELDS}
        item["target"] = item.pop("target_key")
        item["labels"] = a.get("labels") or {}
        out.append(item)
    return out


def earlier_incidents(ledger, p, since) -> list:
    out = []
    for inc in ledger.incidents(target_key=p["target"], limit=p["incidents_limit"] + 1):
        if inc["id"] == p["exclude_incident"] or (inc.get("opened_at") or 0) < since:
            continue
        item = {k: inc.get(k) for k in ("id", "status", "cause", "procedure", "severity", "opened_at", "closed_at",
                                        "escalation_level")}
        latest = {}
        if p["timeline_kinds"]:
            for entry in ledger.timeline(inc["id"]):
                if entry["kind"] in p["timeline_kinds"]:
                    latest[entry["kind"]] = {"at": entry["at"], "summary": entry["summary"], "data": entry["data"]}
        item["latest"] = latest
        out.append(item)
    return out[:p["incidents_limit"]]


def recorded_actions(ledger, p, since) -> list:
    keys = ("id", "incident_id", "target_key", "action", "verdict", "rule", "mode", "at", "result", "params")
    out = []
    for target in [p["target"]] + [t for t in p["action_targets"] if t != p["target"]]:
        out += [{k: a.get(k) for k in keys} for a in ledger.actions(target_key=target) if (a.get("at") or 0) >= since]
    return sorted(out, key=lambda a: (a["at"] or 0, a["id"]))


def watch(ledger, p, module, started) -> dict:
    """Poll until a matching alert received after ``started`` shows up or the timeout passes."""
    w = p["watch"]
    timeout = 0 if module.check_mode else w["timeout"]
    t0 = time.monotonic()
    while True:
        new = matching_alerts(ledger, p, started)
        waited = time.monotonic() - t0
        if new or waited + w["interval"] > timeout:
            return {"waited_s": round(waited, 1), "new": len(new), "timed_out": not new and timeout > 0,
                    "checked_only": timeout == 0}
        time.sleep(w["interval"])


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_one_of=[("target", "namespace")])
    p = module.params
    location = p["ledger"] or os.environ.get("OCTOLLM_LEDGER")
    if location and "://" in location and "@" in location and ":" in location.split("://", 1)[1].split("@", 1)[0]:
        module.no_log_values.add(location.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1])
    if p["since_s"] < 0 or (p["watch"] and (p["watch"]["timeout"] < 0 or p["watch"]["interval"] <= 0)):
        module.fail_json(msg="since_s and watch.timeout must not be negative, watch.interval must be positive")
    started = time.time()
    since = started - p["since_s"]
    result = {"changed": False}
    try:
        with Ledger.open(location) as ledger:
            if p["watch"]:
                result["watch"] = watch(ledger, p, module, started)
            result["alerts"] = matching_alerts(ledger, p, since)
            if p["target"]:
                result["incidents"] = earlier_incidents(ledger, p, since)
                result["actions"] = recorded_actions(ledger, p, since)
    except LedgerError as exc:
        module.fail_json(msg=_redact(f"cannot read the ledger: {exc}; check alert_response_ledger"))
    result["count"] = len(result["alerts"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
