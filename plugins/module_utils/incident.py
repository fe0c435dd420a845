# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Incident lifecycle on top of the ledger: the runbook's response workflow.

acknowledge -> assess -> investigate -> remediate -> document -> close, with the SLA
clocks of the runbook (critical: ack 5 min / resolve 1 h; warning: ack 30 min / resolve
4 h; info: review within 24 h), the timeline, and the Markdown renderings (incident
report and post-incident review draft). Pure Python, no Ansible import.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time

from ansible_collections.octollm.alert_response.plugins.module_utils import escalation as _esc
from ansible_collections.octollm.alert_response.plugins.module_utils.ledger import (
    LedgerError,
    is_dns_label,
    is_dns_subdomain,
    target_of,
)

SEVERITIES = ("critical", "warning", "info")
TIMELINE_KINDS = ("alert", "assess", "evidence", "diagnosis", "guardrail", "action", "verification",
                  "escalation", "notification", "note", "correlation", "close", "resolved", "error")
TARGET_KINDS = ("deployment", "statefulset", "daemonset", "node", "pod", "certificate", "pvc", "hpa",
                "configmap", "database", "cache")


class IncidentError(Exception):
    """An incident operation cannot proceed; the message says what to do."""


# ----------------------------------------------------------------------- SLA clocks
# The runbook's clocks (critical: ack 5 min / resolve 1 h; warning: ack 30 min, first action
# 1 h, resolve 4 h; info: review 24 h) live in escalation.py with the escalation criteria.
def sla_deadlines(severity: str, started_at: float, overrides: dict | None = None) -> dict:
    """Deadlines (epoch seconds) of every clock; overrides as escalation.DEFAULTS names
    them (``critical_ack_s``, ``warning_resolve_s`` ...)."""
    return _esc.sla_deadlines(severity if severity in SEVERITIES else "warning", started_at, options=overrides or {})


def sla_verdict(incident: dict, now: float | None = None) -> dict:
    """Whether each clock was met: ``{ack_met, resolve_met, ..., breached: [...]}``."""
    return _esc.sla_status(incident, now)


# --------------------------------------------------------------------------- targets
def parse_target(key: str) -> dict:
    """``deployment/ns/name`` -> {"kind", "namespace", "name", "key"}; validated."""
    parts = str(key or "").split("/")
    kind = parts[0] if parts else ""
    if kind not in TARGET_KINDS:
        raise IncidentError(f"unknown target kind in {key!r}; use one of {', '.join(TARGET_KINDS)}")
    if kind == "node":
        if len(parts) != 2 or not is_dns_subdomain(parts[1]):
            raise IncidentError(f"invalid node target {key!r}: expected node/<node-name>")
        return {"kind": kind, "namespace": None, "name": parts[1], "key": key}
    if len(parts) != 3 or not is_dns_label(parts[1]) or not is_dns_subdomain(parts[2]):
        raise IncidentError(f"invalid target {key!r}: expected {kind}/<namespace>/<name> with Kubernetes names")
    return {"kind": kind, "namespace": parts[1], "name": parts[2], "key": key}


def manual_alert(alertname: str, labels: dict, severity: str, now: float | None = None) -> dict:
    """An alert record for a procedure an operator runs by hand, so the incident has
    the same shape whether Alertmanager or a person started it."""
    now = time.time() if now is None else now
    labels = {k: str(v) for k, v in labels.items() if v is not None}
    labels.setdefault("alertname", alertname)
    labels.setdefault("severity", severity)
    digest = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
    started = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"fingerprint": f"manual-{digest}", "startsAt": started, "status": "firing", "labels": labels,
            "annotations": {"summary": f"{alertname} started by hand"}, "endsAt": None, "generatorURL": None}


def _epoch(ts: str | None) -> float | None:
    """RFC 3339 with up to 9 fractional digits -> epoch seconds."""
    if not ts or ts.startswith("0001-"):
        return None
    m = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$", ts)
    if not m:
        return None
    base = dt.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + (float("0" + m.group(2)) if m.group(2) else 0.0)


def fmt_time(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m} min" if h else (f"{m} min {s} s" if m else f"{s} s")


# -------------------------------------------------------------------------- lifecycle
def public_alert(row: dict) -> dict:
    keys = ("id", "alertname", "status", "severity", "fingerprint", "target_key", "labels", "annotations",
            "starts_at", "ends_at", "delivery_count", "generator_url")
    return {k: row.get(k) for k in keys}


def open_incident(ledger, alert: dict, procedure: str | None, now: float | None = None,
                  sla_overrides: dict | None = None, title: str | None = None,
                  incident_key: str | None = None) -> tuple[dict, bool, list]:
    """Find or create the open incident of the alert's target and acknowledge it.

    Returns (incident, created, alerts linked). One open incident per target: a re-fired
    alert, a storm of pod alerts from one workload, or a correlated scenario joined on the
    lead target all land in the same incident.
    """
    now = time.time() if now is None else now
    target_key = alert.get("target_key") or target_of(alert.get("labels") or {})
    if not target_key:
        raise IncidentError(f"alert {alert.get('alertname')!r} does not name a valid target (its labels are not "
                            "Kubernetes names the procedures can act on); it is recorded and routed to notify-only")
    key = incident_key or target_key
    severity = (alert.get("labels") or {}).get("severity") or alert.get("severity") or "warning"
    severity = severity if severity in SEVERITIES else "warning"
    incident = ledger.find_open_incident(key)
    created = incident is None
    if created:
        started = _epoch(alert.get("starts_at") or alert.get("startsAt")) or now
        # the clocks start when the alert started firing, not when we saw it
        deadlines = sla_deadlines(severity, started, sla_overrides)
        incident = ledger.create_incident(
            key, title or _title(alert, target_key), severity, procedure, target_key, started_at=started,
            ack_deadline=deadlines["ack_deadline"], resolve_deadline=deadlines["resolve_deadline"],
            data={"review_deadline": deadlines["review_deadline"], "action_deadline": deadlines["action_deadline"],
                  "alertnames": [alert.get("alertname")], "procedures": [procedure] if procedure else []},
            now=now)
        incident = ledger.update_incident(incident["id"], acknowledged_at=now)
    elif _rank(severity) > _rank(incident["severity"]):
        # HighLatency joining a HighRequestLatency incident, HighErrorRate joining the incident
        # of the rollout it follows: one incident, the higher severity (its SLA clocks, from
        # the incident's start), the graver alert's title, and its procedure leads (the one
        # that remediates); the procedures that ran before stay listed in data.procedures
        deadlines = sla_deadlines(severity, incident.get("started_at") or incident["opened_at"], sla_overrides)
        lead = {"procedure": procedure} if procedure else {}
        incident = ledger.update_incident(incident["id"], severity=severity, ack_deadline=deadlines["ack_deadline"],
                                          resolve_deadline=deadlines["resolve_deadline"],
                                          title=title or f"{_title(alert, target_key)} (joined {incident['title']})",
                                          **lead)
    ran = list(incident["data"].get("procedures") or ([incident["procedure"]] if incident.get("procedure") else []))
    if procedure and procedure not in ran:
        incident = ledger.update_incident(incident["id"], data={"procedures": ran + [procedure]})
    firing = ledger.firing_alerts(target_key=target_key)
    ids = {a["id"] for a in firing}
    if alert.get("id"):
        ids.add(alert["id"])
    ledger.link_alerts(incident["id"], sorted(ids))
    ledger.set_alert_state(sorted(ids), "handled")
    names = sorted(set(incident["data"].get("alertnames", [])) | {a["alertname"] for a in firing})
    if names != incident["data"].get("alertnames"):
        incident = ledger.update_incident(incident["id"], data={"alertnames": names})
    return incident, created, [public_alert(a) for a in ledger.incident_alerts(incident["id"])]


def _rank(severity: str) -> int:
    return {"info": 0, "warning": 1, "critical": 2}.get(severity, 1)


def _title(alert: dict, target_key: str) -> str:
    return f"{alert.get('alertname')} on {target_key}"


def escalate(ledger, incident_id: int, level: str, levels: list, recipients: list, reasons: list,
             now: float | None = None) -> tuple[dict, bool]:
    """Raise the incident's escalation level; never lowers it. Returns (incident, raised)."""
    incident = ledger.get_incident(incident_id)
    if incident is None:
        raise IncidentError(f"incident {incident_id} does not exist")
    current = incident.get("escalation_level") or levels[0]
    if current in levels and levels.index(level) <= levels.index(current):
        return incident, False
    ledger.add_timeline(incident_id, "escalation", f"escalated to {level}" +
                        (f" ({', '.join(recipients)})" if recipients else ""),
                        {"level": level, "from": current, "recipients": recipients, "reasons": reasons}, now=now)
    return ledger.update_incident(incident_id, escalation_level=level), True


def close_incident(ledger, incident_id: int, resolution: str, verified: bool, force: bool = False,
                   now: float | None = None) -> tuple[dict, bool, dict]:
    """Close on a verified fix or a resolved alert; refuse while the incident's alerts
    still fire (runbook step 6: confirm no related alerts remain) unless forced."""
    now = time.time() if now is None else now
    incident = ledger.get_incident(incident_id)
    if incident is None:
        raise IncidentError(f"incident {incident_id} does not exist")
    if incident["status"] == "closed":
        return incident, False, sla_verdict(incident, now)
    still = [a for a in ledger.firing_alerts(target_key=incident["target_key"]) if not str(
        a["fingerprint"]).startswith("manual-")]
    if still and not force and not verified:
        raise IncidentError(f"incident {incident_id} still has {len(still)} firing alert(s) "
                            f"({', '.join(sorted({a['alertname'] for a in still}))}); close it when they resolve")
    # a run started by hand has no Alertmanager to resolve its alert: resolve it here
    manual = [a for a in ledger.incident_alerts(incident_id)
              if str(a["fingerprint"]).startswith("manual-") and a["status"] == "firing"]
    if manual:
        ends = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rows = ledger.record_alerts([{"fingerprint": a["fingerprint"], "startsAt": a["starts_at"], "status": "resolved",
                                      "labels": a["labels"], "annotations": a["annotations"], "endsAt": ends}
                                     for a in manual], {"receiver": "manual"}, now=now, target_key=incident["target_key"])
        ledger.link_alerts(incident_id, [r["id"] for r in rows])
        ledger.set_alert_state([r["id"] for r in rows], "handled")
    fields = {"status": "closed", "closed_at": now}
    if incident.get("resolved_at") is None:
        fields["resolved_at"] = now
    incident = ledger.update_incident(incident_id, data={"resolution": resolution, "verified": verified}, **fields)
    verdict = sla_verdict(incident, now)
    ttr = incident["resolved_at"] - (incident.get("started_at") or incident["opened_at"])
    ledger.add_timeline(incident_id, "close", f"closed: {resolution}",
                        {"verified": verified, "time_to_resolve_s": round(ttr, 1), "sla": verdict}, now=now)
    incident = ledger.update_incident(incident_id, data={"sla": verdict, "time_to_resolve_s": round(ttr, 1)})
    return incident, True, verdict


# --------------------------------------------------------------------------- Markdown
def _md(text) -> str:
    """Escape for a Markdown table cell / line: alert text is untrusted."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def report_markdown(ledger, incident_id: int) -> str:
    inc = ledger.get_incident(incident_id)
    if inc is None:
        raise IncidentError(f"incident {incident_id} does not exist; list incidents with incident_info")
    tl = ledger.timeline(incident_id)
    alerts = ledger.incident_alerts(incident_id)
    actions = ledger.actions(incident_id=incident_id)
    d = inc["data"]
    others = [p for p in d.get("procedures") or [] if p != inc.get("procedure")]
    lines = [f"# Incident {inc['id']}: {_md(inc['title'])}", "",
             f"- **Status**: {inc['status']}  **Severity**: {inc['severity']}  "
             f"**Procedure**: {inc.get('procedure') or '-'}" + (f" (also ran: {', '.join(others)})" if others else ""),
             f"- **Target**: `{_md(inc['target_key'])}`",
             f"- **Started**: {fmt_time(inc.get('started_at'))} UTC  **Acknowledged**: "
             f"{fmt_time(inc.get('acknowledged_at'))}  **Closed**: {fmt_time(inc.get('closed_at'))}",
             f"- **Cause**: {inc.get('cause') or 'not determined'}  **Escalation**: "
             f"{inc.get('escalation_level') or 'none'}",
             f"- **SLA**: ack by {fmt_time(inc.get('ack_deadline'))}, resolve by {fmt_time(inc.get('resolve_deadline'))}"
             + (f" ({', '.join(d['sla']['breached']) or 'met'})" if d.get("sla") else ""), ""]
    if d.get("resolution"):
        lines += [f"**Resolution**: {_md(d['resolution'])} (time to resolve {fmt_duration(d.get('time_to_resolve_s'))})", ""]
    lines += ["## Alerts", "", "| id | alert | status | started | deliveries |", "|---|---|---|---|---|"]
    lines += [f"| {a['id']} | {_md(a['alertname'])} | {a['status']} | {_md(a['starts_at'])} | {a['delivery_count']} |"
              for a in alerts]
    lines += ["", "## Timeline", "", "| Time (UTC) | Kind | Event |", "|---|---|---|"]
    lines += [f"| {fmt_time(e['at'])} | {e['kind']} | {_md(e['summary'])} |" for e in tl]
    if actions:
        lines += ["", "## Actions", "", "| Time (UTC) | Action | Mode | Verdict | Rule | Result |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {fmt_time(a['at'])} | {a['action']} | {a['mode']} | {a['verdict']} | {a.get('rule') or '-'} | "
                  f"{a.get('result') or '-'} |" for a in actions]
    return "\n".join(lines) + "\n"


def review_markdown(ledger, incident_id: int, services: list | None = None) -> str:
    """Post-incident review draft with the runbook template's sections, filled from the
    record: the real timeline, the diagnosed cause and its evidence, action items from
    what failed or was refused."""
    inc = ledger.get_incident(incident_id)
    if inc is None:
        raise IncidentError(f"incident {incident_id} does not exist")
    tl = ledger.timeline(incident_id)
    actions = ledger.actions(incident_id=incident_id)
    d = inc["data"]
    end = inc.get("resolved_at") or time.time()
    duration = end - (inc.get("started_at") or inc["opened_at"])
    diag = next((e for e in reversed(tl) if e["kind"] == "diagnosis"), None)
    cause = inc.get("cause") or "undetermined"
    services = services or sorted({inc["target_key"].split("/")[-1]})
    done = [a for a in actions if a["verdict"] == "allowed" and a["mode"] == "remediate"]
    refused = [a for a in actions if a["verdict"] != "allowed" and a["mode"] == "remediate"]
    failed_verif = [e for e in tl if e["kind"] == "verification" and not e["data"].get("ok", True)]
    lines = [f"# Post-Incident Review: {_md(inc['title'])}", "",
             f"**Date**: {fmt_time(inc.get('started_at'))[:10]}",
             f"**Severity**: {inc['severity'].capitalize()}",
             f"**Duration**: {fmt_duration(duration)}",
             f"**Services Affected**: {', '.join(_md(s) for s in services)}", "",
             "## Summary", "",
             f"{_md(', '.join(d.get('alertnames', [])) or inc['title'])} on `{_md(inc['target_key'])}`; cause "
             f"`{cause}`; {_md(d.get('resolution') or 'not resolved yet')}.", "",
             "## Timeline", "", "| Time (UTC) | Event |", "|------------|-------|"]
    lines += [f"| {fmt_time(e['at'])[11:19]} | {e['kind']}: {_md(e['summary'])} |" for e in tl]
    lines += ["", "## Root Cause", ""]
    if diag:
        lines.append(f"Diagnosed cause: **{cause}**.")
        reasons = diag["data"].get("reasons") or []
        lines += [f"- {_md(r)}" for r in reasons] or ["- (no reasons recorded)"]
    else:
        lines.append("No cause was diagnosed automatically; this is a new issue for the runbook.")
    lines += ["", "## Impact", "", f"- **User Impact**: {_md(d.get('impact') or 'see the alert values in the timeline')}",
              "- **Revenue Impact**: to be estimated by the owning team",
              f"- **Duration**: {fmt_duration(duration)}", "",
              "## Resolution", "", _md(d.get("resolution") or "Not resolved at the time of this draft.")]
    if done:
        lines += [f"- {a['action']} ({a.get('result') or 'no result recorded'})" for a in done]
    lines += ["", "## Contributing Factors", ""]
    factors = [f"{a['action']} was refused by guardrail `{a.get('rule')}`: {_md(a.get('reason') or '')}" for a in refused]
    factors += [f"verification failed: {_md(e['summary'])}" for e in failed_verif]
    if (d.get("sla") or {}).get("breached"):
        factors.append(f"SLA breached: {', '.join(d['sla']['breached'])}")
    lines += [f"{i}. {f}" for i, f in enumerate(factors, 1)] or ["1. (none recorded)"]
    lines += ["", "## Action Items", ""]
    items = [f"Prevent `{cause}` on {inc['target_key']} from recurring (fix the underlying defect)"]
    items += [f"Decide on `{a['action']}` refused by `{a.get('rule')}` (policy or manual action)" for a in refused]
    if cause == "undetermined":
        items.append("Add the missing diagnosis to the runbook and the procedure")
    if failed_verif:
        items.append("Investigate why the remediation did not verify")
    due = fmt_time((inc.get("closed_at") or inc["opened_at"]) + 7 * 86400)[:10]
    lines += [f"{i}. [ ] {_md(t)} (Owner: @owning-team, Due: {due})" for i, t in enumerate(items, 1)]
    lines += ["", "## Lessons Learned", "", "- What went well: ", "- What could be improved: ", "- What we learned: ", ""]
    return "\n".join(lines)


__all__ = ["IncidentError", "LedgerError", "close_incident", "escalate", "manual_alert", "open_incident",
           "parse_target", "report_markdown", "review_markdown", "sla_deadlines", "sla_verdict"]
