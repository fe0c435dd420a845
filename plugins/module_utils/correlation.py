# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook's multi-alert scenarios: which firing alert leads a correlated pair.

  S1  PodCrashLoopBackOff on pods of node N  + NodeNotReady of N               -> node_not_ready leads
  S2  HighErrorRate of service S             + DatabaseConnectionPoolExhausted of S -> db_pool_exhausted leads
  S3  HighLatency/HighRequestLatency of S    + LowCacheHitRate in S's namespace -> low_cache_hit_rate leads

Given a follower alert, ``correlate`` looks in the ledger for a firing lead received within
the scenario's window and names it; the event source puts the result in the event
(``meta.correlation``) so that the rulebook sends the pair to the lead procedure, and the
procedures call it again at diagnosis time, which covers the other arrival order (the
follower first, the lead later). Pure: it only reads through the ledger object it is given.
"""
from __future__ import annotations

import time

# seconds; the runbook's `for:` of the lead alert (S3: LowCacheHitRate's 15 min)
DEFAULT_WINDOWS = {"S1": 300, "S2": 300, "S3": 900}

SCENARIOS = {
    "S1": {"followers": ("PodCrashLoopBackOff",), "lead": "NodeNotReady", "procedure": "node_not_ready",
           "keys": ("node",)},
    "S2": {"followers": ("HighErrorRate",), "lead": "DatabaseConnectionPoolExhausted", "procedure": "db_pool_exhausted",
           "keys": ("namespace", "service")},
    "S3": {"followers": ("HighLatency", "HighRequestLatency"), "lead": "LowCacheHitRate",
           "procedure": "low_cache_hit_rate", "keys": ("namespace",)},
}


def correlate(ledger, alert: dict, windows: dict | None = None, now: float | None = None) -> dict | None:
    """``{"scenario", "lead_alert_id", "lead_target", "procedure"}`` when ``alert`` (a ledger
    row: alertname, status, labels) follows a firing lead; else None."""
    if alert.get("status") != "firing":
        return None
    labels = alert.get("labels") or {}
    name = alert.get("alertname") or labels.get("alertname")
    now = time.time() if now is None else now
    win = dict(DEFAULT_WINDOWS, **(windows or {}))
    for scenario, spec in SCENARIOS.items():
        if name not in spec["followers"]:
            continue
        want = {k: labels.get(k) for k in spec["keys"]}
        if not all(want.values()):
            continue
        for lead in ledger.firing_alerts(alertname=spec["lead"], since=now - win[scenario], labels=want):
            if not lead.get("target_key") or now - float(lead["received_at"]) > win[scenario]:
                continue
            if all((lead["labels"] or {}).get(k) == v for k, v in want.items()):
                return {"scenario": scenario, "lead_alert_id": lead["id"], "lead_target": lead["target_key"],
                        "procedure": spec["procedure"]}
    return None
