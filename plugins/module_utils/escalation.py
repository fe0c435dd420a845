# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Escalation decision trees, per-procedure escalation criteria and SLA clocks.

Pure functions (no Ansible import, no I/O, no clock unless ``now`` is omitted), used by
modules (the incident module's SLA clocks) and exposed as Jinja filters by
``plugins/filter/escalation.py`` (``octollm.alert_response.escalate`` ...). Every threshold is an option with the runbook's value as default; unknown
option names raise ``ValueError`` so that a typo never silently keeps a default.

Levels, lowest first (``LEVELS``)::

    level          channel  recipients (LEVEL_INFO)
    none           -        nobody: record only
    ticket         ticket   oncall (a ticket in the tracker, no page)
    notify_oncall  chat     oncall (Slack)
    page_oncall    page     oncall (PagerDuty)
    page_senior    page     senior_engineer
    page_lead      page     engineering_lead
    page_vp        page     vp_engineering

People already engaged stay engaged: ``recipients`` names who to notify *now*. A
criterion may add recipients to its level: ``dba`` (database admin, at the
``page_senior`` rank), ``cloud_support`` (GCP support, with ``page_vp``), ``legal``
(expired production certificate, with ``page_vp``), ``customer_success`` (tree 1
social media, with ``page_vp``), or name people of another level (tree 1 row 1a pages
the lead *and* the VP). Specialists (``SPECIALISTS``) named by any applying criterion
are kept even when a higher criterion decides the level.

Result of ``escalate`` and the trees::

    {"level": "page_lead", "rank": 5, "channel": "page",
     "recipients": ["engineering_lead", "dba"], "cloud_support": False,
     "reasons": ["..."], "rule_ids": ["high_error_rate.lead_error_rate", ...],
     "criteria": [{"rule_id", "level", "reason", "recipients"}, ...],
     "advice": ["keep_troubleshooting", ...]}

``advice`` carries the tree outputs that are not an escalation (``keep_troubleshooting``,
``investigate_proactively``, ``keep_monitoring``, ``cordon_drain_replace``,
``cleanup_and_monitor``). ``FACTS`` documents the facts every procedure reads; a fact
that is absent never triggers a criterion (exception: ``renewing`` for cert_expiring,
where unknown counts as not renewing).
"""
from __future__ import annotations

import math
import time

LEVELS = ("none", "ticket", "notify_oncall", "page_oncall", "page_senior", "page_lead", "page_vp")
LEVEL_INFO = {
    "none": {"channel": None, "recipients": []},
    "ticket": {"channel": "ticket", "recipients": ["oncall"]},
    "notify_oncall": {"channel": "chat", "recipients": ["oncall"]},
    "page_oncall": {"channel": "page", "recipients": ["oncall"]},
    "page_senior": {"channel": "page", "recipients": ["senior_engineer"]},
    "page_lead": {"channel": "page", "recipients": ["engineering_lead"]},
    "page_vp": {"channel": "page", "recipients": ["vp_engineering"]},
}
RECIPIENTS = ("oncall", "senior_engineer", "engineering_lead", "vp_engineering",
              "dba", "cloud_support", "legal", "customer_success")
SPECIALISTS = ("dba", "cloud_support", "legal", "customer_success")

# Severity of each procedure's alert (runbook Overview); facts["severity"] overrides it
# (high_latency serves both HighLatency/critical and HighRequestLatency/warning).
PROCEDURES = {
    "pod_crashloop": "critical", "node_not_ready": "critical", "high_error_rate": "critical",
    "db_pool_exhausted": "critical", "high_latency": "critical", "cert_expiring": "critical",
    "node_cpu_pressure": "warning", "node_memory_pressure": "warning", "pod_oomkilled": "warning",
    "pvc_pending": "warning", "replicas_mismatch": "warning", "low_cache_hit_rate": "warning",
    "deployment_observed": "info", "hpa_scaled": "info", "configmap_changed": "info",
}
SEVERITIES = ("critical", "warning", "info")
# What a severity engages without any criterion (runbook Overview: critical pages,
# warning goes to Slack, info is only logged).
BASELINE = {"critical": "page_oncall", "warning": "notify_oncall", "info": "none"}

DEFAULTS = {
    # tree 1 (service outage): fractions of 5xx responses
    "outage_error_rate": 1.0, "ticket_below_error_rate": 0.10, "page_above_error_rate": 0.50,
    # tree 2 (performance): p95 seconds
    "slow_p95_s": 1.0, "critical_p95_s": 2.0, "proactive_after_s": 900,
    # tree 3 and node_not_ready: share of NotReady nodes
    "max_notready_share": 0.30,
    # common criteria
    "baseline": True, "root_cause_timeout_s": 900,
    "refusal_level": "notify_oncall", "refusal_level_critical": "page_oncall",
    # warning procedures name no recipient (matrix 7.14): on-call via chat, then senior
    "warning_level": "notify_oncall", "warning_followup_level": "page_senior",
    "warning_followup_after_s": 3600,
    # pod_crashloop
    "critical_services": ["orchestrator", "reflex-layer"], "critical_service_down_s": 1800,
    "crashloop_resolution_s": 7200,
    # high_error_rate
    "senior_error_rate": 0.20, "senior_error_duration_s": 600, "lead_error_rate": 0.50,
    "error_resolution_s": 3600,
    # db_pool_exhausted
    "db_saturation": 0.90, "max_connections_significant_ratio": 1.25, "db_resolution_s": 3600,
    # high_latency
    "senior_p95_s": 2.0, "senior_p95_duration_s": 900, "latency_root_cause_timeout_s": 1200,
    # cert_expiring: days left
    "cert_senior_days": 3, "cert_lead_days": 1,
    # warning procedures
    "node_cpu_high": 0.90, "node_cpu_high_s": 1800, "node_memory_high": 0.95, "node_memory_high_s": 900,
    "oom_kills_per_hour": 3, "pvc_pending_s": 900, "mismatch_s": 1800,
    "cache_hit_low": 0.30, "cache_hit_low_s": 3600,
    # SLA clocks (seconds), runbook Overview + matrix 1.1
    "critical_ack_s": 300, "critical_resolve_s": 3600,
    "warning_ack_s": 1800, "warning_action_s": 3600, "warning_resolve_s": 14400,
    "info_review_s": 86400,
}

_COMMON_FACTS = {
    "severity": "critical|warning|info; default: the procedure's alert severity",
    "cause": "the diagnosed cause (matrix 6.1); 'undetermined' starts the root-cause clock",
    "elapsed_s": "seconds since the incident started (alert startsAt)",
    "sla_breached": "list of breached clocks from sla_status (ack, action, resolve, review); "
                    "or pass the whole sla_status result as 'sla'",
    "refused_actions": "guardrail verdicts (dicts with allowed/action/rule) or action names that were refused",
}
FACTS = {
    "pod_crashloop": {
        "services_crashing": "number of distinct services with crash-looping pods",
        "rollback_failed": "bool: a rollout_undo did not stop the crashes",
        "data_loss_suspected": "bool", "data_corruption_suspected": "bool",
        "service": "the service (Deployment) name", "service_down_s": "seconds the service has had no Ready pod",
        "critical_service_down_s": "seconds a critical service has been down (overrides service/service_down_s)",
        "code_change_needed": "bool: restart/config/rollback cannot fix it",
        "complete_outage": "bool: all services down",
        "estimated_resolution_s": "operator's estimate",
    },
    "node_not_ready": {
        "not_ready_nodes": "NotReady nodes (Ready condition False or Unknown)", "total_nodes": "all nodes",
        "drain_stuck": "bool: pods stuck Terminating", "pool_network_issue": "bool: network trouble across the pool",
        "cluster_wide_pattern": "bool", "autorepair_failed": "bool: no replacement node appears",
        "control_plane_unreachable": "bool", "cloud_fault_suspected": "bool: GCP infrastructure fault",
        "cleanup_resolves": "bool|None: disk/memory cleanup fixed it (cause disk_pressure/memory_pressure)",
    },
    "high_error_rate": {
        "error_rate": "5xx fraction 0.0-1.0",
        "error_rate_duration_s": "seconds the error rate has stayed above senior_error_rate (20 %)",
        "services_down": "services completely down (tree 1)", "services_affected": "services with high errors",
        "social_media": "bool: customers report it on social media", "revenue_impact": "bool",
        "rollback_failed": "bool", "estimated_resolution_s": "operator's estimate",
    },
    "db_pool_exhausted": {
        "persists_after_restart": "bool", "leak_source_unknown": "bool",
        "max_connections": "current PostgreSQL max_connections",
        "max_connections_required": "max_connections the pool sizes need",
        "db_cpu": "DB CPU use 0.0-1.0, minimum over the window ('consistently')",
        "db_memory": "DB memory use 0.0-1.0, minimum over the window",
        "slow_queries_despite_indexes": "bool", "replication_or_sharding_needed": "bool",
        "db_outage_suspected": "bool", "larger_instance_needed": "bool",
        "estimated_resolution_s": "operator's estimate",
    },
    "high_latency": {
        "p95": "p95 latency in seconds", "users_reporting_slow": "bool (tree 2)",
        "p95_over_1s_for_s": "seconds p95 has been above 1 s (tree 2)",
        "p95_over_2s_for_s": "seconds p95 has been above 2 s (senior criterion)",
        "rollback_failed": "bool", "slow_queries_despite_indexes": "bool", "db_config_tuning_needed": "bool",
        "replication_or_sharding_needed": "bool", "services_affected": "services with high latency",
        "architecture_change_needed": "bool", "customer_complaints": "bool", "revenue_impact": "bool",
    },
    "cert_expiring": {
        "days_left": "days until notAfter (negative once expired)",
        "renewing": "bool: a renewal is progressing; absent = not renewing",
        "production": "bool, default true: the certificate serves production",
        "certmanager_restart_failed": "bool: trouble persists after restarting cert-manager",
        "dns_provider_broken": "bool", "certificates_failing": "certificates failing to renew",
        "provider_change_needed": "bool", "data_exposure_risk": "bool", "commercial_cert_needed": "bool",
    },
    "node_cpu_pressure": {
        "cpu_usage": "node CPU use 0.0-1.0",
        "cpu_usage_duration_s": "seconds above node_cpu_high (90 %)", "users_reporting_slow": "bool",
    },
    "node_memory_pressure": {
        "memory_usage": "node memory use 0.0-1.0",
        "memory_usage_duration_s": "seconds above node_memory_high (95 %)",
        "oom_kills": "OOMKilled containers seen on the node", "cleanup_resolves": "bool|None (tree 3)",
    },
    "pod_oomkilled": {
        "oom_kills_last_hour": "OOM kills of the container in the last hour",
        "memory_leak_suspected": "bool (also cause == memory_leak)",
    },
    "pvc_pending": {"pending_s": "seconds the PVC has been Pending",
                    "quota_increase_needed": "bool (also cause == quota_exceeded)"},
    "replicas_mismatch": {"mismatch_s": "seconds available != desired",
                          "capacity_issue": "bool (also cause == insufficient_capacity)"},
    "low_cache_hit_rate": {"hit_rate": "hit ratio 0.0-1.0",
                           "hit_rate_duration_s": "seconds below cache_hit_low (30 %)",
                           "user_facing_latency": "bool"},
    "deployment_observed": {},
    "hpa_scaled": {},
    "configmap_changed": {"outcome": "intentional_change|unexpected_change (or as 'cause')"},
}
for _facts in FACTS.values():
    _facts.update(_COMMON_FACTS)

_TRUE = ("true", "yes", "1", "on", "y")


# ---------------------------------------------------------------------------- helpers
def _options(options=None, overrides=None) -> dict:
    merged = dict(DEFAULTS)
    for source in (options or {}), (overrides or {}):
        unknown = sorted(set(source) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown escalation option(s) {unknown}; known: {sorted(DEFAULTS)}")
        merged.update(source)
    for key in ("refusal_level", "refusal_level_critical", "warning_level", "warning_followup_level"):
        _check_level(merged[key], key)
    return merged


def _check_level(level, what="level") -> str:
    if level not in LEVELS:
        raise ValueError(f"{what}: unknown escalation level {level!r}; use one of {list(LEVELS)}")
    return level


def _num(value, name="value"):
    """A number from a fact (Prometheus answers are strings); None when absent/NaN."""
    if isinstance(value, bool):
        return float(value)
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"fact {name!r} must be a number, got {value!r}") from None
    return None if math.isnan(out) else out


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


class _Facts:
    """Read access to the facts dict with typed getters."""

    def __init__(self, facts):
        if facts is None:
            facts = {}
        if not isinstance(facts, dict):
            raise ValueError(f"facts must be a dict, got {type(facts).__name__}")
        self.raw = facts

    def num(self, key, default=None):
        out = _num(self.raw.get(key), key)
        return default if out is None else out

    def flag(self, key) -> bool:
        return _flag(self.raw.get(key))

    def text(self, key):
        value = self.raw.get(key)
        return None if value is None else str(value)

    def has(self, key) -> bool:
        return self.raw.get(key) is not None


def _hit(rule_id, level, reason, recipients=None) -> dict:
    _check_level(level, rule_id)
    return {"rule_id": rule_id, "level": level, "reason": reason,
            "recipients": list(LEVEL_INFO[level]["recipients"] if recipients is None else recipients)}


def escalation_rank(level) -> int:
    """Position of a level in LEVELS (none = 0 ... page_vp = 6)."""
    return LEVELS.index(_check_level(level))


def escalation_max(levels) -> str:
    """The highest of several levels ('none' for an empty list)."""
    levels = list(levels or [])
    return max(levels, key=escalation_rank) if levels else "none"


def escalation_levels(_value=None) -> list:
    """The ordered levels with channel and recipients (a filter needs an input; it is ignored)."""
    return [dict(level=lv, rank=i, **LEVEL_INFO[lv]) for i, lv in enumerate(LEVELS)]


def _one_up(level) -> str:
    return LEVELS[min(escalation_rank(level) + 1, len(LEVELS) - 1)]


def _result(hits, advice=()) -> dict:
    level = escalation_max(h["level"] for h in hits)
    recipients = []
    for h in hits:
        if h["level"] == level:
            recipients += h["recipients"]
    for h in hits:
        recipients += [r for r in h["recipients"] if r in SPECIALISTS]
    recipients = list(dict.fromkeys(recipients))
    return {
        "level": level, "rank": escalation_rank(level), "channel": LEVEL_INFO[level]["channel"],
        "recipients": recipients, "cloud_support": "cloud_support" in recipients,
        "reasons": [h["reason"] for h in hits], "rule_ids": [h["rule_id"] for h in hits],
        "criteria": hits, "advice": list(dict.fromkeys(advice)),
    }


def _pct(x) -> str:
    return f"{x * 100:g} %"


# ---------------------------------------------------------------------------- trees
def _tree1(error_rate, services_down, social_media, o):
    """Tree 1 hits + advice. Rows (matrix 4.1): < 10 % is tested before > 50 %."""
    rate = _num(error_rate, "error_rate")
    if rate is None or not 0.0 <= rate <= 1.0:
        raise ValueError(f"error_rate must be a fraction 0.0-1.0 (0.25 = 25 %), got {error_rate!r}")
    down = _num(services_down, "services_down") or 0
    if rate >= o["outage_error_rate"]:
        hits = [_hit("tree1.complete_outage", "page_oncall",
                     f"tree 1: service completely unavailable ({_pct(rate)} errors): page the on-call engineer")]
        if down > 1:
            hits.append(_hit("tree1.multiple_services_down", "page_vp",
                             f"tree 1: {down:g} services down: page the engineering lead and VP engineering",
                             ["engineering_lead", "vp_engineering"]))
        if _flag(social_media):
            hits.append(_hit("tree1.social_media", "page_vp",
                             "tree 1: customers report the outage on social media: "
                             "notify VP engineering and Customer Success", ["vp_engineering", "customer_success"]))
        return hits, ([] if len(hits) > 1 else ["keep_troubleshooting"])
    if rate < o["ticket_below_error_rate"]:
        return [_hit("tree1.low_error_rate", "ticket",
                     f"tree 1: error rate {_pct(rate)} < {_pct(o['ticket_below_error_rate'])}: "
                     "create a ticket, no page")], []
    if rate > o["page_above_error_rate"]:
        return [_hit("tree1.high_error_rate", "page_oncall",
                     f"tree 1: error rate {_pct(rate)} > {_pct(o['page_above_error_rate'])}: "
                     "page the on-call engineer")], []
    return [_hit("tree1.moderate_error_rate", "notify_oncall",
                 f"tree 1: error rate {_pct(rate)} between {_pct(o['ticket_below_error_rate'])} and "
                 f"{_pct(o['page_above_error_rate'])}: assign to the on-call engineer via chat")], []


def tree_service_outage(error_rate, services_down=1, social_media=False, **thresholds) -> dict:
    """Decision tree 1 (service outage).

    Boundaries (ours, runbook silent): exactly 100 % is a complete outage; exactly 10 %
    and exactly 50 % go to chat (the runbook's "< 10 %" and "> 50 %" are strict).
    Thresholds: outage_error_rate, ticket_below_error_rate, page_above_error_rate.
    """
    hits, advice = _tree1(error_rate, services_down, social_media, _options(None, thresholds))
    return _result(hits, advice)


def _tree2(p95, users, over_1s_for, o):
    p95 = _num(p95, "p95")
    if p95 is None or p95 < 0:
        raise ValueError(f"p95 must be a number of seconds >= 0, got {p95!r}")
    slow, crit = o["slow_p95_s"], o["critical_p95_s"]
    if _flag(users):
        if p95 > crit:
            return [_hit("tree2.users_critical", "page_oncall",
                         f"tree 2: users report slowness and p95 {p95:g} s > {crit:g} s: "
                         "page the on-call engineer")], []
        if p95 > slow:
            return [_hit("tree2.users_warning", "notify_oncall",
                         f"tree 2: users report slowness and p95 {p95:g} s is in ({slow:g} s, {crit:g} s]: "
                         "notify the on-call engineer via chat")], []
        return [_hit("tree2.users_ticket", "ticket",
                     f"tree 2: users report slowness but p95 {p95:g} s <= {slow:g} s: "
                     "create a ticket for investigation")], []
    duration = _num(over_1s_for, "p95_over_1s_for_s") or 0
    if p95 > slow and duration > o["proactive_after_s"]:
        return [_hit("tree2.proactive", "notify_oncall",
                     f"tree 2: p95 {p95:g} s > {slow:g} s for {duration:g} s (> {o['proactive_after_s']:g} s): "
                     "investigate proactively (chat, no page)")], ["investigate_proactively"]
    return [], ["keep_monitoring"]


def tree_performance(p95_seconds, users_reporting_slow=False, p95_over_1s_for_seconds=0, **thresholds) -> dict:
    """Decision tree 2 (performance degradation).

    Boundaries (ours): with user reports, p95 > 2 s pages, 1 s < p95 <= 2 s goes to chat,
    p95 <= 1 s is a ticket. Without reports, p95 > 1 s for more than 15 min means
    "investigate proactively" (chat, advice ``investigate_proactively``), else
    ``keep_monitoring`` (level none). Thresholds: slow_p95_s, critical_p95_s, proactive_after_s.
    """
    hits, advice = _tree2(p95_seconds, users_reporting_slow, p95_over_1s_for_seconds,
                          _options(None, thresholds))
    return _result(hits, advice)


_KINDS = {"nodenotready": "node_not_ready", "node_not_ready": "node_not_ready",
          "diskpressure": "pressure", "disk_pressure": "pressure",
          "memorypressure": "pressure", "memory_pressure": "pressure"}


def _tree3(alert_kind, not_ready, total, cleanup_resolves, o):
    kind = _KINDS.get(str(alert_kind).strip().lower())
    if kind is None:
        raise ValueError(f"alert_kind must be NodeNotReady, DiskPressure or MemoryPressure, got {alert_kind!r}")
    if kind == "pressure":
        if cleanup_resolves is None:
            return [], ["cleanup_and_monitor"]
        if _flag(cleanup_resolves):
            return [], ["cleanup_and_monitor"]
        return [_hit("tree3.cleanup_failed", "page_oncall",
                     "tree 3: cleanup does not relieve the disk/memory pressure: "
                     "page the on-call engineer for node replacement")], []
    not_ready, total = _num(not_ready, "not_ready_nodes"), _num(total, "total_nodes")
    if total is None or total <= 0 or not_ready is None or not 0 <= not_ready <= total:
        raise ValueError(f"need 0 <= not_ready_nodes <= total_nodes and total_nodes > 0, "
                         f"got {not_ready!r} of {total!r}")
    share = not_ready / total
    if share > o["max_notready_share"]:
        return [_hit("tree3.share_over_limit", "page_vp",
                     f"tree 3: {not_ready:g} of {total:g} nodes NotReady ({share:.0%} > "
                     f"{_pct(o['max_notready_share'])}): page VP engineering and GCP support",
                     ["vp_engineering", "cloud_support"])], []
    if not_ready > 1:
        return [_hit("tree3.multiple_nodes", "page_lead",
                     f"tree 3: {not_ready:g} nodes NotReady: page the engineering lead")], []
    if not_ready == 1:
        return [], ["cordon_drain_replace"]
    return [], []


def tree_infrastructure(alert_kind, not_ready_nodes=0, total_nodes=1, cleanup_resolves=None, **thresholds) -> dict:
    """Decision tree 3 (infrastructure).

    NodeNotReady: share > 30 % (strict) -> page_vp + cloud_support, checked first (so 1
    of 3 nodes is already > 30 %); 2 or more nodes -> page_lead; exactly one ->
    level none with advice ``cordon_drain_replace`` (the only automatic branch).
    DiskPressure/MemoryPressure: cleanup_resolves False -> page_oncall (node
    replacement); True or None (not tried yet) -> advice ``cleanup_and_monitor``.
    Threshold: max_notready_share.
    """
    hits, advice = _tree3(alert_kind, not_ready_nodes, total_nodes, cleanup_resolves, _options(None, thresholds))
    return _result(hits, advice)


# ---------------------------------------------------------------------------- criteria
def _crit_pod_crashloop(f, o):
    hits = []
    n = f.num("services_crashing", 0)
    if n >= 2:
        hits.append(_hit("pod_crashloop.several_services", "page_senior",
                         f"pods crash in {n:g} different services"))
    if f.flag("rollback_failed"):
        hits.append(_hit("pod_crashloop.rollback_failed", "page_senior", "the rollback did not stop the crashes"))
    if f.flag("data_loss_suspected"):
        hits.append(_hit("pod_crashloop.data_loss", "page_senior", "data loss suspected"))
    down = f.num("critical_service_down_s")
    if down is None and f.text("service") in o["critical_services"]:
        down = f.num("service_down_s")
    if down is not None and down > o["critical_service_down_s"]:
        what = f"critical service {f.text('service')}" if f.has("service") else "a critical service"
        hits.append(_hit("pod_crashloop.critical_service_down", "page_lead",
                         f"{what} down for {down:g} s (> {o['critical_service_down_s']:g} s)"))
    if f.flag("code_change_needed"):
        hits.append(_hit("pod_crashloop.code_change", "page_lead",
                         "the fix needs a code change (restart/config/rollback cannot solve it)"))
    if f.flag("complete_outage"):
        hits.append(_hit("pod_crashloop.complete_outage", "page_vp", "complete outage: all services down"))
    if f.flag("data_corruption_suspected"):
        hits.append(_hit("pod_crashloop.data_corruption", "page_vp", "data corruption suspected"))
    hits += _long_resolution(f, "pod_crashloop", "page_vp", o["crashloop_resolution_s"])
    return hits, []


def _long_resolution(f, procedure, level, limit):
    est = f.num("estimated_resolution_s")
    if est is not None and est > limit:
        return [_hit(f"{procedure}.long_resolution", level,
                     f"estimated resolution {est:g} s > {limit:g} s")]
    return []


def _crit_node_not_ready(f, o):
    hits, advice = [], []
    nr, total = f.num("not_ready_nodes"), f.num("total_nodes")
    if nr is not None and total:
        tree_hits, advice = _tree3("NodeNotReady", nr, total, None, o)
        hits += tree_hits
        if nr >= 2:
            hits.append(_hit("node_not_ready.several_nodes", "page_senior", f"{nr:g} nodes NotReady at once"))
        if nr / total > o["max_notready_share"]:
            hits.append(_hit("node_not_ready.share_over_limit", "page_lead",
                             f"{nr / total:.0%} of nodes NotReady (> {_pct(o['max_notready_share'])})"))
        if nr >= total:
            hits.append(_hit("node_not_ready.all_nodes", "page_vp", "complete cluster failure: all nodes NotReady",
                             ["vp_engineering", "cloud_support"]))
    flags = (("drain_stuck", "page_senior", "the node cannot be drained (pods stuck Terminating)", None),
             ("pool_network_issue", "page_senior", "network trouble across the whole node pool", None),
             ("cluster_wide_pattern", "page_lead", "the failure pattern points cluster-wide", None),
             ("autorepair_failed", "page_lead", "auto-repair does not create replacement nodes", None),
             ("control_plane_unreachable", "page_vp", "the control plane is unreachable",
              ["vp_engineering", "cloud_support"]),
             ("cloud_fault_suspected", "page_vp", "a cloud infrastructure fault is suspected",
              ["vp_engineering", "cloud_support"]))
    for key, level, reason, recipients in flags:
        if f.flag(key):
            hits.append(_hit(f"node_not_ready.{key}", level, reason, recipients))
    if f.text("cause") in ("disk_pressure", "memory_pressure") and f.has("cleanup_resolves"):
        tree_hits, tree_advice = _tree3(f.text("cause"), None, None, f.raw["cleanup_resolves"], o)
        hits, advice = hits + tree_hits, advice + tree_advice
    return hits, advice


def _crit_high_error_rate(f, o):
    hits, advice = [], []
    rate = f.num("error_rate")
    if rate is not None:
        hits, advice = _tree1(rate, f.num("services_down", 1), f.flag("social_media"), o)
        duration = f.num("error_rate_duration_s", 0)
        if rate > o["senior_error_rate"] and duration > o["senior_error_duration_s"]:
            hits.append(_hit("high_error_rate.sustained", "page_senior",
                             f"error rate {_pct(rate)} > {_pct(o['senior_error_rate'])} for {duration:g} s "
                             f"(> {o['senior_error_duration_s']:g} s)"))
        if rate > o["lead_error_rate"]:
            hits.append(_hit("high_error_rate.severe", "page_lead",
                             f"error rate {_pct(rate)} > {_pct(o['lead_error_rate'])} (severe outage)"))
        if rate >= o["outage_error_rate"]:
            hits.append(_hit("high_error_rate.complete_outage", "page_vp",
                             f"complete service outage ({_pct(rate)} errors)"))
    if f.flag("rollback_failed"):
        hits.append(_hit("high_error_rate.rollback_failed", "page_senior", "the rollback did not resolve it"))
    if f.num("services_affected", 0) >= 2:
        hits.append(_hit("high_error_rate.several_services", "page_lead",
                         f"{f.num('services_affected'):g} services affected"))
    hits += _long_resolution(f, "high_error_rate", "page_lead", o["error_resolution_s"])
    if f.flag("social_media"):
        hits.append(_hit("high_error_rate.social_media", "page_vp",
                         "customer-reported errors trend on social media"))
    if f.flag("revenue_impact"):
        hits.append(_hit("high_error_rate.revenue_impact", "page_vp", "revenue-impacting outage"))
    return hits, advice


def _crit_db_pool_exhausted(f, o):
    hits = []
    if f.flag("persists_after_restart"):
        hits.append(_hit("db_pool_exhausted.persists_after_restart", "page_senior",
                         "pool exhaustion persists after restarting the services"))
    if f.flag("leak_source_unknown"):
        hits.append(_hit("db_pool_exhausted.leak_source_unknown", "page_senior",
                         "the source of the connection leak is not found"))
    have, need = f.num("max_connections"), f.num("max_connections_required")
    if have and need is not None and need > have * o["max_connections_significant_ratio"]:
        hits.append(_hit("db_pool_exhausted.max_connections", "page_senior",
                         f"max_connections must rise significantly ({have:g} -> {need:g}, "
                         f"> x{o['max_connections_significant_ratio']:g}; needs a database restart)"))
    for key, what in (("db_cpu", "CPU"), ("db_memory", "memory")):
        value = f.num(key)
        if value is not None and value > o["db_saturation"]:
            hits.append(_hit(f"db_pool_exhausted.{key}", "page_senior",
                             f"database {what} consistently at {_pct(value)} (> {_pct(o['db_saturation'])})",
                             ["dba"]))
    for key, reason in (("slow_queries_despite_indexes", "queries stay slow despite indexes"),
                        ("replication_or_sharding_needed", "replication or sharding is needed")):
        if f.flag(key):
            hits.append(_hit(f"db_pool_exhausted.{key}", "page_senior", reason, ["dba"]))
    for key, reason in (("db_outage_suspected", "database outage suspected"),
                        ("larger_instance_needed", "the database must move to a larger instance")):
        if f.flag(key):
            hits.append(_hit(f"db_pool_exhausted.{key}", "page_lead", reason))
    hits += _long_resolution(f, "db_pool_exhausted", "page_lead", o["db_resolution_s"])
    return hits, []


def _crit_high_latency(f, o):
    hits, advice = [], []
    p95 = f.num("p95")
    if p95 is not None:
        hits, advice = _tree2(p95, f.flag("users_reporting_slow"), f.num("p95_over_1s_for_s", 0), o)
        duration = f.num("p95_over_2s_for_s", 0)
        if p95 > o["senior_p95_s"] and duration > o["senior_p95_duration_s"]:
            hits.append(_hit("high_latency.sustained", "page_senior",
                             f"p95 {p95:g} s > {o['senior_p95_s']:g} s for {duration:g} s "
                             f"(> {o['senior_p95_duration_s']:g} s)"))
    if f.flag("rollback_failed"):
        hits.append(_hit("high_latency.rollback_failed", "page_senior", "the rollback did not resolve it"))
    for key, reason in (("slow_queries_despite_indexes", "queries stay slow despite proper indexes"),
                        ("db_config_tuning_needed", "the database configuration needs tuning"),
                        ("replication_or_sharding_needed", "read replicas or sharding are under consideration")):
        if f.flag(key):
            hits.append(_hit(f"high_latency.{key}", "page_senior", reason, ["dba"]))
    if f.num("services_affected", 0) >= 2:
        hits.append(_hit("high_latency.several_services", "page_lead",
                         f"latency affects {f.num('services_affected'):g} services"))
    for key, reason in (("architecture_change_needed", "an architectural change is needed"),
                        ("customer_complaints", "customers complain"),
                        ("revenue_impact", "revenue impact")):
        if f.flag(key):
            hits.append(_hit(f"high_latency.{key}", "page_lead", reason))
    return hits, advice


def _crit_cert_expiring(f, o):
    hits = []
    days = f.num("days_left")
    production = f.flag("production") if f.has("production") else True
    if days is not None:
        if days < o["cert_senior_days"] and not f.flag("renewing"):
            hits.append(_hit("cert_expiring.not_renewing", "page_senior",
                             f"certificate expires in {days:g} days (< {o['cert_senior_days']:g}) and is not renewing"))
        if days < o["cert_lead_days"]:
            hits.append(_hit("cert_expiring.under_a_day", "page_lead",
                             f"certificate expires in {days * 24:g} h (< {o['cert_lead_days'] * 24:g} h)"))
        if days <= 0 and production:
            hits.append(_hit("cert_expiring.expired", "page_vp", "a production certificate has expired (outage)",
                             ["vp_engineering", "legal"]))
    for key, level, reason, recipients in (
            ("certmanager_restart_failed", "page_senior", "cert-manager trouble persists after the restart", None),
            ("dns_provider_broken", "page_senior", "the DNS provider integration is broken", None),
            ("provider_change_needed", "page_lead", "the certificate provider must change", None),
            ("data_exposure_risk", "page_vp", "risk of customer data exposure through TLS problems",
             ["vp_engineering", "legal"]),
            ("commercial_cert_needed", "page_vp", "commercial certificates must be bought",
             ["vp_engineering", "legal"])):
        if f.flag(key):
            hits.append(_hit(f"cert_expiring.{key}", level, reason, recipients))
    if f.num("certificates_failing", 0) >= 2:
        hits.append(_hit("cert_expiring.several_certificates", "page_lead",
                         f"{f.num('certificates_failing'):g} certificates fail to renew"))
    return hits, []


def _warn(f, o, rule_id, reason):
    """Warning criteria name no recipient (matrix 7.14): on-call via chat first, the
    senior engineer once the incident is older than warning_followup_after_s."""
    elapsed = f.num("elapsed_s", 0)
    if elapsed >= o["warning_followup_after_s"]:
        return _hit(rule_id, o["warning_followup_level"],
                    f"{reason}; still open after {elapsed:g} s (>= {o['warning_followup_after_s']:g} s)")
    return _hit(rule_id, o["warning_level"], reason)


def _over(f, value_key, duration_key, threshold, min_duration, below=False):
    value, duration = f.num(value_key), f.num(duration_key, 0)
    if value is None:
        return None
    beyond = value < threshold if below else value > threshold
    return (value, duration) if beyond and duration > min_duration else None


def _crit_node_cpu_pressure(f, o):
    hits = []
    over = _over(f, "cpu_usage", "cpu_usage_duration_s", o["node_cpu_high"], o["node_cpu_high_s"])
    if over:
        hits.append(_warn(f, o, "node_cpu_pressure.sustained",
                          f"node CPU {_pct(over[0])} > {_pct(o['node_cpu_high'])} for {over[1]:g} s "
                          f"(> {o['node_cpu_high_s']:g} s)"))
    if f.flag("users_reporting_slow"):
        hits.append(_warn(f, o, "node_cpu_pressure.users_report", "users report degraded performance"))
    return hits, []


def _crit_node_memory_pressure(f, o):
    hits, advice = [], []
    over = _over(f, "memory_usage", "memory_usage_duration_s", o["node_memory_high"], o["node_memory_high_s"])
    if over:
        hits.append(_warn(f, o, "node_memory_pressure.sustained",
                          f"node memory {_pct(over[0])} > {_pct(o['node_memory_high'])} for {over[1]:g} s "
                          f"(> {o['node_memory_high_s']:g} s)"))
    if f.num("oom_kills", 0) >= 1:
        hits.append(_warn(f, o, "node_memory_pressure.oom_kills",
                          f"{f.num('oom_kills'):g} OOMKilled containers on the node"))
    if f.has("cleanup_resolves"):
        tree_hits, advice = _tree3("MemoryPressure", None, None, f.raw["cleanup_resolves"], o)
        hits += tree_hits
    return hits, advice


def _crit_pod_oomkilled(f, o):
    hits = []
    kills = f.num("oom_kills_last_hour", 0)
    if kills > o["oom_kills_per_hour"]:
        hits.append(_warn(f, o, "pod_oomkilled.repeated",
                          f"OOMKilled {kills:g} times in the last hour (> {o['oom_kills_per_hour']:g})"))
    if f.flag("memory_leak_suspected") or f.text("cause") == "memory_leak":
        hits.append(_warn(f, o, "pod_oomkilled.memory_leak", "memory leak suspected"))
    return hits, []


def _crit_pvc_pending(f, o):
    hits = []
    pending = f.num("pending_s", 0)
    if pending > o["pvc_pending_s"]:
        hits.append(_warn(f, o, "pvc_pending.long_pending",
                          f"PVC pending for {pending:g} s (> {o['pvc_pending_s']:g} s)"))
    if f.flag("quota_increase_needed") or f.text("cause") == "quota_exceeded":
        hits.append(_warn(f, o, "pvc_pending.quota_increase", "a quota increase is needed"))
    return hits, []


def _crit_replicas_mismatch(f, o):
    hits = []
    mismatch = f.num("mismatch_s", 0)
    if mismatch > o["mismatch_s"]:
        hits.append(_warn(f, o, "replicas_mismatch.persists",
                          f"replica mismatch for {mismatch:g} s (> {o['mismatch_s']:g} s)"))
    if f.flag("capacity_issue") or f.text("cause") == "insufficient_capacity":
        hits.append(_warn(f, o, "replicas_mismatch.capacity", "the cause is resource capacity"))
    return hits, []


def _crit_low_cache_hit_rate(f, o):
    hits = []
    low = _over(f, "hit_rate", "hit_rate_duration_s", o["cache_hit_low"], o["cache_hit_low_s"], below=True)
    if low:
        hits.append(_warn(f, o, "low_cache_hit_rate.sustained",
                          f"hit rate {_pct(low[0])} < {_pct(o['cache_hit_low'])} for {low[1]:g} s "
                          f"(> {o['cache_hit_low_s']:g} s)"))
    if f.flag("user_facing_latency"):
        hits.append(_warn(f, o, "low_cache_hit_rate.user_latency", "the low hit rate causes user-facing latency"))
    return hits, []


def _crit_configmap_changed(f, o):
    # matrix 2.16 (ours): an unexpected change is worth a word to the on-call engineer
    if (f.text("outcome") or f.text("cause")) == "unexpected_change":
        return [_hit("configmap_changed.unexpected_change", "notify_oncall",
                     "the ConfigMap changed without a matching change record")], []
    return [], []


def _crit_none(f, o):
    return [], []


_CRITERIA = {
    "pod_crashloop": _crit_pod_crashloop, "node_not_ready": _crit_node_not_ready,
    "high_error_rate": _crit_high_error_rate, "db_pool_exhausted": _crit_db_pool_exhausted,
    "high_latency": _crit_high_latency, "cert_expiring": _crit_cert_expiring,
    "node_cpu_pressure": _crit_node_cpu_pressure, "node_memory_pressure": _crit_node_memory_pressure,
    "pod_oomkilled": _crit_pod_oomkilled, "pvc_pending": _crit_pvc_pending,
    "replicas_mismatch": _crit_replicas_mismatch, "low_cache_hit_rate": _crit_low_cache_hit_rate,
    "deployment_observed": _crit_none, "hpa_scaled": _crit_none, "configmap_changed": _crit_configmap_changed,
}


def _refused(facts) -> list:
    out = []
    for item in facts.raw.get("refused_actions") or []:
        if isinstance(item, dict):
            if not _flag(item.get("allowed", False)):
                out.append(f"{item.get('action', '?')} ({item.get('rule', 'refused')})")
        elif item:
            out.append(str(item))
    return out


def _breached(facts) -> list:
    breached = facts.raw.get("sla_breached")
    if breached is None and isinstance(facts.raw.get("sla"), dict):
        breached = facts.raw["sla"].get("breached")
    if isinstance(breached, str):
        breached = [breached]
    return [str(b) for b in breached or []]


def _common(procedure, severity, f, o, hits):
    """Criteria shared by every procedure, applied after the procedure's own."""
    out = []
    if o["baseline"] and BASELINE[severity] != "none":
        out.append(_hit("common.severity_baseline", BASELINE[severity],
                        f"{severity} alerts engage the on-call engineer by "
                        f"{LEVEL_INFO[BASELINE[severity]]['channel']}"))
    timeout = o["latency_root_cause_timeout_s"] if procedure == "high_latency" else o["root_cause_timeout_s"]
    elapsed = f.num("elapsed_s", 0)
    if severity != "info" and f.text("cause") == "undetermined" and elapsed >= timeout:
        out.append(_hit("common.root_cause_timeout", "page_senior",
                        f"root cause not found after {elapsed:g} s (>= {timeout:g} s)"))
    refused = _refused(f)
    if refused:
        level = o["refusal_level_critical"] if severity == "critical" else o["refusal_level"]
        out.append(_hit("common.guardrail_refused", level,
                        "guardrails refused " + ", ".join(refused) + ": a person must decide"))
    breached = _breached(f)
    if breached:
        current = escalation_max(h["level"] for h in hits + out)
        above = f"one level above {current}" if current != LEVELS[-1] else f"already at {current}"
        out.append(_hit("common.sla_breach", _one_up(current), f"SLA breached ({', '.join(breached)}): {above}"))
    return out


def escalation_criteria(procedure, facts=None, options=None, **overrides) -> dict:
    """The procedure's own criteria and trees only (no baseline, time or SLA rules)."""
    o = _options(options, overrides)
    if procedure not in _CRITERIA:
        raise ValueError(f"unknown procedure {procedure!r}; use one of {sorted(_CRITERIA)}")
    hits, advice = _CRITERIA[procedure](_Facts(facts), o)
    return _result(hits, advice)


def escalate(procedure, facts=None, options=None, **overrides) -> dict:
    """Who to involve now for ``procedure`` given ``facts`` (see FACTS).

    The level is the highest of: the severity baseline (critical -> page_oncall,
    warning -> notify_oncall; option ``baseline: false`` turns it off), the procedure's
    criteria and trees, ``common.root_cause_timeout`` (cause ``undetermined`` and
    ``elapsed_s`` >= 900 s, 1200 s for high_latency -> page_senior; not for info),
    ``common.guardrail_refused`` (any refused action -> notify_oncall, page_oncall for
    critical). Then ``common.sla_breach`` raises the result one level when any SLA clock
    is breached (once, however many clocks are). Options: see DEFAULTS; either as a dict
    (``options=``) or as keywords.
    """
    o = _options(options, overrides)
    if procedure not in _CRITERIA:
        raise ValueError(f"unknown procedure {procedure!r}; use one of {sorted(_CRITERIA)}")
    f = _Facts(facts)
    severity = f.text("severity") or PROCEDURES[procedure]
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; use one of {list(SEVERITIES)}")
    hits, advice = _CRITERIA[procedure](f, o)
    hits = hits + _common(procedure, severity, f, o, hits)
    result = _result(hits, advice)
    result.update(procedure=procedure, severity=severity)
    return result


# ---------------------------------------------------------------------------- SLA clocks
def _clock_lengths(severity, o) -> dict:
    if severity == "critical":
        return {"ack": o["critical_ack_s"], "resolve": o["critical_resolve_s"]}
    if severity == "warning":
        return {"ack": o["warning_ack_s"], "action": o["warning_action_s"], "resolve": o["warning_resolve_s"]}
    if severity == "info":
        return {"review": o["info_review_s"]}
    raise ValueError(f"unknown severity {severity!r}; use one of {list(SEVERITIES)}")


def sla_deadlines(severity, opened_at_epoch, options=None, **overrides) -> dict:
    """Deadlines (UNIX epoch seconds) from the runbook's response-time SLAs.

    critical: ack 5 min, resolve 1 h; warning: ack 30 min, first action 1 h (matrix 1.1),
    resolve 4 h; info: review within 24 h. Clocks that do not apply are None. Start the
    clocks at the alert's startsAt (the incident's started_at), not when the runner saw
    it. Overrides: critical_ack_s, critical_resolve_s, warning_ack_s, warning_action_s,
    warning_resolve_s, info_review_s.
    """
    o = _options(options, overrides)
    start = _num(opened_at_epoch, "opened_at_epoch")
    if start is None:
        raise ValueError("opened_at_epoch must be a UNIX time in seconds")
    lengths = _clock_lengths(severity, o)
    return {f"{clock}_deadline": (start + lengths[clock] if clock in lengths else None)
            for clock in ("ack", "action", "resolve", "review")}


def _first(*values):
    return next((v for v in values if v is not None), None)


def _clock(deadline, done_at, now):
    """True met, False breached, None still running (or no such clock)."""
    if deadline is None:
        return None
    if done_at is not None:
        return done_at <= deadline
    return False if now > deadline else None


def sla_status(incident, now=None, options=None, **overrides) -> dict:
    """Which SLA clocks of a ledger incident are met, running or breached at ``now``.

    Reads severity, started_at (else opened_at), ack_deadline/resolve_deadline when
    stored (else computed), acknowledged_at, resolved_at (else closed_at); info
    incidents count as reviewed when acknowledged, resolved or closed. The warning
    "first action" clock is evaluated only when the incident carries ``first_action_at``
    (top level or in ``data``), so that incidents recorded without it never breach it.
    Returns ``{ack_met, action_met, resolve_met, review_met, breached: [...], <clock>_deadline,
    <clock>_remaining_s}``; ``*_met`` is None while a clock still runs.
    """
    if not isinstance(incident, dict):
        raise ValueError(f"incident must be a dict, got {type(incident).__name__}")
    now = time.time() if now is None else _num(now, "now")
    data = incident.get("data") if isinstance(incident.get("data"), dict) else {}
    start = _num(_first(incident.get("started_at"), incident.get("opened_at")), "started_at")
    if start is None:
        raise ValueError("the incident has neither started_at nor opened_at")
    deadlines = sla_deadlines(incident.get("severity"), start, options, **overrides)
    for clock in ("ack", "resolve"):
        stored = _num(incident.get(f"{clock}_deadline"), f"{clock}_deadline")
        if stored is not None:
            deadlines[f"{clock}_deadline"] = stored
    acked = _num(incident.get("acknowledged_at"), "acknowledged_at")
    resolved = _num(_first(incident.get("resolved_at"), incident.get("closed_at")), "resolved_at")
    has_action = "first_action_at" in incident or "first_action_at" in data
    first_action = _num(incident.get("first_action_at", data.get("first_action_at")), "first_action_at")
    done = {"ack": acked, "action": first_action, "resolve": resolved,
            "review": _first(acked, resolved)}
    out, breached = {}, []
    for clock in ("ack", "action", "resolve", "review"):
        deadline = deadlines[f"{clock}_deadline"]
        if clock == "action" and not has_action:
            deadline = None
        met = _clock(deadline, done[clock], now)
        out[f"{clock}_met"] = met
        out[f"{clock}_deadline"] = deadline
        out[f"{clock}_remaining_s"] = None if deadline is None or done[clock] is not None else deadline - now
        if met is False:
            breached.append(clock)
    out["breached"] = breached
    return out
