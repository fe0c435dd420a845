"""Escalation trees, per-procedure criteria and SLA clocks (plugins/filter/escalation.py).

Every branch of the three trees, every criterion of the 15 procedures with its
boundary, the criteria common to all procedures, custom thresholds, the SLA clocks,
and the filter plugin as Ansible loads it.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.octollm.alert_response.plugins.module_utils import escalation as esc

REPO = Path(__file__).resolve().parents[2]


def crit(procedure, facts=None, **options):
    """Procedure criteria only (no baseline/time/SLA rules)."""
    return esc.escalation_criteria(procedure, facts or {}, **options)


def full(procedure, facts=None, **options):
    return esc.escalate(procedure, facts or {}, **options)


# ---------------------------------------------------------------------------- levels
def test_levels_are_ordered_and_described():
    assert esc.LEVELS == ("none", "ticket", "notify_oncall", "page_oncall", "page_senior", "page_lead", "page_vp")
    assert [esc.escalation_rank(lv) for lv in esc.LEVELS] == list(range(7))
    table = esc.escalation_levels()
    assert [row["level"] for row in table] == list(esc.LEVELS)
    assert table[2] == {"level": "notify_oncall", "rank": 2, "channel": "chat", "recipients": ["oncall"]}
    assert {row["channel"] for row in table} == {None, "ticket", "chat", "page"}
    for row in table:
        assert set(row["recipients"]) <= set(esc.RECIPIENTS)
    assert set(esc.SPECIALISTS) <= set(esc.RECIPIENTS)


def test_escalation_max_and_rank_errors():
    assert esc.escalation_max(["ticket", "page_lead", "notify_oncall"]) == "page_lead"
    assert esc.escalation_max([]) == "none"
    assert esc.escalation_max(None) == "none"
    with pytest.raises(ValueError, match="unknown escalation level 'page_ceo'"):
        esc.escalation_rank("page_ceo")


# ---------------------------------------------------------------------------- tree 1
@pytest.mark.parametrize("rate, down, social, level, rules, advice", [
    (1.0, 1, False, "page_oncall", ["tree1.complete_outage"], ["keep_troubleshooting"]),
    (1.0, 2, False, "page_vp", ["tree1.complete_outage", "tree1.multiple_services_down"], []),
    (1.0, 1, True, "page_vp", ["tree1.complete_outage", "tree1.social_media"], []),
    (1.0, 3, True, "page_vp", ["tree1.complete_outage", "tree1.multiple_services_down", "tree1.social_media"], []),
    (0.0, 1, False, "ticket", ["tree1.low_error_rate"], []),
    (0.0999, 1, False, "ticket", ["tree1.low_error_rate"], []),
    (0.10, 1, False, "notify_oncall", ["tree1.moderate_error_rate"], []),   # exactly 10 %: chat
    (0.30, 1, False, "notify_oncall", ["tree1.moderate_error_rate"], []),
    (0.50, 1, False, "notify_oncall", ["tree1.moderate_error_rate"], []),   # exactly 50 %: chat
    (0.5001, 1, False, "page_oncall", ["tree1.high_error_rate"], []),
    (0.9999, 5, True, "page_oncall", ["tree1.high_error_rate"], []),        # 1a/1b only under 100 %
])
def test_tree_service_outage_rows(rate, down, social, level, rules, advice):
    out = esc.tree_service_outage(rate, services_down=down, social_media=social)
    assert (out["level"], out["rule_ids"], out["advice"]) == (level, rules, advice)
    assert len(out["reasons"]) == len(rules)


def test_tree_service_outage_recipients():
    out = esc.tree_service_outage(1.0, services_down=3, social_media=True)
    assert out["recipients"] == ["engineering_lead", "vp_engineering", "customer_success"]
    assert out["channel"] == "page" and out["cloud_support"] is False
    assert esc.tree_service_outage(0.05)["recipients"] == ["oncall"]
    assert esc.tree_service_outage(0.05)["channel"] == "ticket"


def test_tree_service_outage_custom_thresholds_and_strings():
    assert esc.tree_service_outage(0.07, ticket_below_error_rate=0.05)["level"] == "notify_oncall"
    assert esc.tree_service_outage(0.40, page_above_error_rate=0.30)["level"] == "page_oncall"
    assert esc.tree_service_outage(0.96, outage_error_rate=0.95)["rule_ids"] == ["tree1.complete_outage"]
    assert esc.tree_service_outage("0.6", services_down="1", social_media="false")["level"] == "page_oncall"
    assert esc.tree_service_outage(1, services_down=1, social_media="yes")["level"] == "page_vp"


@pytest.mark.parametrize("bad", [25, -0.1, 1.01, None, "abc", float("nan")])
def test_tree_service_outage_rejects_non_fractions(bad):
    with pytest.raises(ValueError):
        esc.tree_service_outage(bad)


def test_unknown_threshold_is_an_error():
    with pytest.raises(ValueError, match="unknown escalation option"):
        esc.tree_service_outage(0.5, page_above=0.3)


# ---------------------------------------------------------------------------- tree 2
@pytest.mark.parametrize("p95, users, over, level, rules, advice", [
    (2.01, True, 0, "page_oncall", ["tree2.users_critical"], []),
    (2.0, True, 0, "notify_oncall", ["tree2.users_warning"], []),    # exactly 2 s: chat
    (1.01, True, 0, "notify_oncall", ["tree2.users_warning"], []),
    (1.0, True, 0, "ticket", ["tree2.users_ticket"], []),            # exactly 1 s: ticket
    (0.2, True, 0, "ticket", ["tree2.users_ticket"], []),
    (1.5, False, 901, "notify_oncall", ["tree2.proactive"], ["investigate_proactively"]),
    (1.5, False, 900, "none", [], ["keep_monitoring"]),               # exactly 15 min: keep watching
    (1.0, False, 5000, "none", [], ["keep_monitoring"]),
    (5.0, False, 0, "none", [], ["keep_monitoring"]),
])
def test_tree_performance_rows(p95, users, over, level, rules, advice):
    out = esc.tree_performance(p95, users_reporting_slow=users, p95_over_1s_for_seconds=over)
    assert (out["level"], out["rule_ids"], out["advice"]) == (level, rules, advice)


def test_tree_performance_custom_thresholds():
    assert esc.tree_performance(2.5, True, critical_p95_s=3)["level"] == "notify_oncall"
    assert esc.tree_performance(0.7, True, slow_p95_s=0.5)["level"] == "notify_oncall"
    assert esc.tree_performance(1.2, False, 61, proactive_after_s=60)["rule_ids"] == ["tree2.proactive"]


@pytest.mark.parametrize("bad", [-1, None, "slow"])
def test_tree_performance_rejects_bad_p95(bad):
    with pytest.raises(ValueError):
        esc.tree_performance(bad)


# ---------------------------------------------------------------------------- tree 3
@pytest.mark.parametrize("nr, total, level, rules, advice", [
    (0, 10, "none", [], []),
    (1, 10, "none", [], ["cordon_drain_replace"]),
    (2, 10, "page_lead", ["tree3.multiple_nodes"], []),
    (3, 10, "page_lead", ["tree3.multiple_nodes"], []),               # exactly 30 %: not above
    (4, 10, "page_vp", ["tree3.share_over_limit"], []),
    (1, 3, "page_vp", ["tree3.share_over_limit"], []),                # one of three is already 33 %
    (10, 10, "page_vp", ["tree3.share_over_limit"], []),
])
def test_tree_infrastructure_node_not_ready(nr, total, level, rules, advice):
    out = esc.tree_infrastructure("NodeNotReady", nr, total)
    assert (out["level"], out["rule_ids"], out["advice"]) == (level, rules, advice)
    assert out["cloud_support"] is (level == "page_vp")


@pytest.mark.parametrize("kind", ["DiskPressure", "MemoryPressure", "disk_pressure", "memory_pressure"])
def test_tree_infrastructure_pressure(kind):
    assert esc.tree_infrastructure(kind, cleanup_resolves=True)["advice"] == ["cleanup_and_monitor"]
    assert esc.tree_infrastructure(kind, cleanup_resolves=None)["level"] == "none"
    failed = esc.tree_infrastructure(kind, cleanup_resolves=False)
    assert (failed["level"], failed["rule_ids"], failed["recipients"]) == (
        "page_oncall", ["tree3.cleanup_failed"], ["oncall"])


def test_tree_infrastructure_custom_share_and_errors():
    assert esc.tree_infrastructure("NodeNotReady", 4, 10, max_notready_share=0.5)["level"] == "page_lead"
    assert esc.tree_infrastructure("nodenotready", 1, 3, max_notready_share=0.5)["advice"] == ["cordon_drain_replace"]
    for args in (("PIDPressure", 1, 3), ("NodeNotReady", 1, 0), ("NodeNotReady", 4, 3), ("NodeNotReady", None, 3)):
        with pytest.raises(ValueError):
            esc.tree_infrastructure(*args)


# ---------------------------------------------------------------------------- criteria
CASES = [
    # (procedure, facts, options, level, rule_ids)
    ("pod_crashloop", {}, {}, "none", []),
    ("pod_crashloop", {"services_crashing": 2}, {}, "page_senior", ["pod_crashloop.several_services"]),
    ("pod_crashloop", {"services_crashing": 1}, {}, "none", []),
    ("pod_crashloop", {"rollback_failed": True}, {}, "page_senior", ["pod_crashloop.rollback_failed"]),
    ("pod_crashloop", {"data_loss_suspected": "yes"}, {}, "page_senior", ["pod_crashloop.data_loss"]),
    ("pod_crashloop", {"critical_service_down_s": 1801}, {}, "page_lead", ["pod_crashloop.critical_service_down"]),
    ("pod_crashloop", {"critical_service_down_s": 1800}, {}, "none", []),
    ("pod_crashloop", {"service": "orchestrator", "service_down_s": 1801}, {}, "page_lead",
     ["pod_crashloop.critical_service_down"]),
    ("pod_crashloop", {"service": "reflex-layer", "service_down_s": 4000}, {}, "page_lead",
     ["pod_crashloop.critical_service_down"]),
    ("pod_crashloop", {"service": "api", "service_down_s": 4000}, {}, "none", []),
    ("pod_crashloop", {"service": "api", "service_down_s": 4000}, {"critical_services": ["api"]}, "page_lead",
     ["pod_crashloop.critical_service_down"]),
    ("pod_crashloop", {"code_change_needed": True}, {}, "page_lead", ["pod_crashloop.code_change"]),
    ("pod_crashloop", {"complete_outage": True}, {}, "page_vp", ["pod_crashloop.complete_outage"]),
    ("pod_crashloop", {"data_corruption_suspected": True}, {}, "page_vp", ["pod_crashloop.data_corruption"]),
    ("pod_crashloop", {"estimated_resolution_s": 7201}, {}, "page_vp", ["pod_crashloop.long_resolution"]),
    ("pod_crashloop", {"estimated_resolution_s": 7200}, {}, "none", []),
    ("pod_crashloop", {"estimated_resolution_s": 3601}, {"crashloop_resolution_s": 3600}, "page_vp",
     ["pod_crashloop.long_resolution"]),
    # node_not_ready: tree 3 and section 2 together, the higher wins (matrix 4.3)
    ("node_not_ready", {"not_ready_nodes": 1, "total_nodes": 10}, {}, "none", []),
    ("node_not_ready", {"not_ready_nodes": 0, "total_nodes": 10}, {}, "none", []),
    ("node_not_ready", {"not_ready_nodes": 2, "total_nodes": 10}, {}, "page_lead",
     ["tree3.multiple_nodes", "node_not_ready.several_nodes"]),
    ("node_not_ready", {"not_ready_nodes": 3, "total_nodes": 10}, {}, "page_lead",
     ["tree3.multiple_nodes", "node_not_ready.several_nodes"]),
    ("node_not_ready", {"not_ready_nodes": 4, "total_nodes": 10}, {}, "page_vp",
     ["tree3.share_over_limit", "node_not_ready.several_nodes", "node_not_ready.share_over_limit"]),
    ("node_not_ready", {"not_ready_nodes": 1, "total_nodes": 3}, {}, "page_vp",
     ["tree3.share_over_limit", "node_not_ready.share_over_limit"]),
    ("node_not_ready", {"not_ready_nodes": 5, "total_nodes": 5}, {}, "page_vp",
     ["tree3.share_over_limit", "node_not_ready.several_nodes", "node_not_ready.share_over_limit",
      "node_not_ready.all_nodes"]),
    ("node_not_ready", {"not_ready_nodes": 4, "total_nodes": 10}, {"max_notready_share": 0.5}, "page_lead",
     ["tree3.multiple_nodes", "node_not_ready.several_nodes"]),
    ("node_not_ready", {"drain_stuck": True}, {}, "page_senior", ["node_not_ready.drain_stuck"]),
    ("node_not_ready", {"pool_network_issue": True}, {}, "page_senior", ["node_not_ready.pool_network_issue"]),
    ("node_not_ready", {"cluster_wide_pattern": True}, {}, "page_lead", ["node_not_ready.cluster_wide_pattern"]),
    ("node_not_ready", {"autorepair_failed": True}, {}, "page_lead", ["node_not_ready.autorepair_failed"]),
    ("node_not_ready", {"control_plane_unreachable": True}, {}, "page_vp",
     ["node_not_ready.control_plane_unreachable"]),
    ("node_not_ready", {"cloud_fault_suspected": True}, {}, "page_vp", ["node_not_ready.cloud_fault_suspected"]),
    ("node_not_ready", {"cause": "disk_pressure", "cleanup_resolves": False}, {}, "page_oncall",
     ["tree3.cleanup_failed"]),
    ("node_not_ready", {"cause": "memory_pressure", "cleanup_resolves": True}, {}, "none", []),
    ("node_not_ready", {"cause": "kubelet_down", "cleanup_resolves": False}, {}, "none", []),
    # high_error_rate: tree 1 and section 3 together
    ("high_error_rate", {"error_rate": 0.05}, {}, "ticket", ["tree1.low_error_rate"]),
    ("high_error_rate", {"error_rate": 0.3, "error_rate_duration_s": 601}, {}, "page_senior",
     ["tree1.moderate_error_rate", "high_error_rate.sustained"]),
    ("high_error_rate", {"error_rate": 0.3, "error_rate_duration_s": 600}, {}, "notify_oncall",
     ["tree1.moderate_error_rate"]),
    ("high_error_rate", {"error_rate": 0.2, "error_rate_duration_s": 5000}, {}, "notify_oncall",
     ["tree1.moderate_error_rate"]),
    ("high_error_rate", {"error_rate": 0.51}, {}, "page_lead", ["tree1.high_error_rate", "high_error_rate.severe"]),
    ("high_error_rate", {"error_rate": 0.5}, {}, "notify_oncall", ["tree1.moderate_error_rate"]),
    ("high_error_rate", {"error_rate": 1.0}, {}, "page_vp",
     ["tree1.complete_outage", "high_error_rate.severe", "high_error_rate.complete_outage"]),
    ("high_error_rate", {"error_rate": 0.15, "error_rate_duration_s": 700}, {"senior_error_rate": 0.1}, "page_senior",
     ["tree1.moderate_error_rate", "high_error_rate.sustained"]),
    ("high_error_rate", {"error_rate": 0.45}, {"lead_error_rate": 0.4}, "page_lead",
     ["tree1.moderate_error_rate", "high_error_rate.severe"]),
    ("high_error_rate", {"rollback_failed": True}, {}, "page_senior", ["high_error_rate.rollback_failed"]),
    ("high_error_rate", {"services_affected": 2}, {}, "page_lead", ["high_error_rate.several_services"]),
    ("high_error_rate", {"services_affected": 1}, {}, "none", []),
    ("high_error_rate", {"estimated_resolution_s": 3601}, {}, "page_lead", ["high_error_rate.long_resolution"]),
    ("high_error_rate", {"estimated_resolution_s": 3600}, {}, "none", []),
    ("high_error_rate", {"error_rate": 0.3, "social_media": True}, {}, "page_vp",
     ["tree1.moderate_error_rate", "high_error_rate.social_media"]),
    ("high_error_rate", {"revenue_impact": True}, {}, "page_vp", ["high_error_rate.revenue_impact"]),
    # db_pool_exhausted
    ("db_pool_exhausted", {"persists_after_restart": True}, {}, "page_senior",
     ["db_pool_exhausted.persists_after_restart"]),
    ("db_pool_exhausted", {"leak_source_unknown": True}, {}, "page_senior",
     ["db_pool_exhausted.leak_source_unknown"]),
    ("db_pool_exhausted", {"max_connections": 100, "max_connections_required": 126}, {}, "page_senior",
     ["db_pool_exhausted.max_connections"]),
    ("db_pool_exhausted", {"max_connections": 100, "max_connections_required": 125}, {}, "none", []),
    ("db_pool_exhausted", {"max_connections": 100, "max_connections_required": 110},
     {"max_connections_significant_ratio": 1.0}, "page_senior", ["db_pool_exhausted.max_connections"]),
    ("db_pool_exhausted", {"db_cpu": 0.91}, {}, "page_senior", ["db_pool_exhausted.db_cpu"]),
    ("db_pool_exhausted", {"db_cpu": 0.90}, {}, "none", []),
    ("db_pool_exhausted", {"db_memory": 0.95}, {}, "page_senior", ["db_pool_exhausted.db_memory"]),
    ("db_pool_exhausted", {"db_memory": 0.85}, {"db_saturation": 0.8}, "page_senior", ["db_pool_exhausted.db_memory"]),
    ("db_pool_exhausted", {"slow_queries_despite_indexes": True}, {}, "page_senior",
     ["db_pool_exhausted.slow_queries_despite_indexes"]),
    ("db_pool_exhausted", {"replication_or_sharding_needed": True}, {}, "page_senior",
     ["db_pool_exhausted.replication_or_sharding_needed"]),
    ("db_pool_exhausted", {"db_outage_suspected": True}, {}, "page_lead", ["db_pool_exhausted.db_outage_suspected"]),
    ("db_pool_exhausted", {"larger_instance_needed": True}, {}, "page_lead",
     ["db_pool_exhausted.larger_instance_needed"]),
    ("db_pool_exhausted", {"estimated_resolution_s": 3601}, {}, "page_lead", ["db_pool_exhausted.long_resolution"]),
    # high_latency: tree 2 and section 5 together
    ("high_latency", {"p95": 0.5}, {}, "none", []),
    ("high_latency", {"p95": 2.5, "p95_over_2s_for_s": 901}, {}, "page_senior", ["high_latency.sustained"]),
    ("high_latency", {"p95": 2.5, "p95_over_2s_for_s": 900}, {}, "none", []),
    ("high_latency", {"p95": 2.0, "p95_over_2s_for_s": 5000}, {}, "none", []),
    ("high_latency", {"p95": 2.5, "p95_over_1s_for_s": 1000, "p95_over_2s_for_s": 1000}, {}, "page_senior",
     ["tree2.proactive", "high_latency.sustained"]),
    ("high_latency", {"p95": 2.5, "users_reporting_slow": True}, {}, "page_oncall", ["tree2.users_critical"]),
    ("high_latency", {"p95": 1.6, "p95_over_2s_for_s": 61}, {"senior_p95_s": 1.5, "senior_p95_duration_s": 60},
     "page_senior", ["high_latency.sustained"]),
    ("high_latency", {"rollback_failed": True}, {}, "page_senior", ["high_latency.rollback_failed"]),
    ("high_latency", {"slow_queries_despite_indexes": True}, {}, "page_senior",
     ["high_latency.slow_queries_despite_indexes"]),
    ("high_latency", {"db_config_tuning_needed": True}, {}, "page_senior", ["high_latency.db_config_tuning_needed"]),
    ("high_latency", {"replication_or_sharding_needed": True}, {}, "page_senior",
     ["high_latency.replication_or_sharding_needed"]),
    ("high_latency", {"services_affected": 2}, {}, "page_lead", ["high_latency.several_services"]),
    ("high_latency", {"architecture_change_needed": True}, {}, "page_lead",
     ["high_latency.architecture_change_needed"]),
    ("high_latency", {"customer_complaints": True}, {}, "page_lead", ["high_latency.customer_complaints"]),
    ("high_latency", {"revenue_impact": True}, {}, "page_lead", ["high_latency.revenue_impact"]),
    # cert_expiring
    ("cert_expiring", {"days_left": 5}, {}, "none", []),
    ("cert_expiring", {"days_left": 2.9}, {}, "page_senior", ["cert_expiring.not_renewing"]),
    ("cert_expiring", {"days_left": 2.9, "renewing": False}, {}, "page_senior", ["cert_expiring.not_renewing"]),
    ("cert_expiring", {"days_left": 2.9, "renewing": True}, {}, "none", []),
    ("cert_expiring", {"days_left": 3.0}, {}, "none", []),
    ("cert_expiring", {"days_left": 0.99}, {}, "page_lead",
     ["cert_expiring.not_renewing", "cert_expiring.under_a_day"]),
    ("cert_expiring", {"days_left": 0.99, "renewing": True}, {}, "page_lead", ["cert_expiring.under_a_day"]),
    ("cert_expiring", {"days_left": 1.0, "renewing": True}, {}, "none", []),
    ("cert_expiring", {"days_left": 0}, {}, "page_vp",
     ["cert_expiring.not_renewing", "cert_expiring.under_a_day", "cert_expiring.expired"]),
    ("cert_expiring", {"days_left": -1, "production": False}, {}, "page_lead",
     ["cert_expiring.not_renewing", "cert_expiring.under_a_day"]),
    ("cert_expiring", {"days_left": 6, "renewing": False}, {"cert_senior_days": 7}, "page_senior",
     ["cert_expiring.not_renewing"]),
    ("cert_expiring", {"certmanager_restart_failed": True}, {}, "page_senior",
     ["cert_expiring.certmanager_restart_failed"]),
    ("cert_expiring", {"dns_provider_broken": True}, {}, "page_senior", ["cert_expiring.dns_provider_broken"]),
    ("cert_expiring", {"provider_change_needed": True}, {}, "page_lead", ["cert_expiring.provider_change_needed"]),
    ("cert_expiring", {"data_exposure_risk": True}, {}, "page_vp", ["cert_expiring.data_exposure_risk"]),
    ("cert_expiring", {"commercial_cert_needed": True}, {}, "page_vp", ["cert_expiring.commercial_cert_needed"]),
    ("cert_expiring", {"certificates_failing": 2}, {}, "page_lead", ["cert_expiring.several_certificates"]),
    ("cert_expiring", {"certificates_failing": 1}, {}, "none", []),
    # warning procedures: on-call via chat first (matrix 7.14)
    ("node_cpu_pressure", {"cpu_usage": 0.91, "cpu_usage_duration_s": 1801}, {}, "notify_oncall",
     ["node_cpu_pressure.sustained"]),
    ("node_cpu_pressure", {"cpu_usage": 0.90, "cpu_usage_duration_s": 5000}, {}, "none", []),
    ("node_cpu_pressure", {"cpu_usage": 0.95, "cpu_usage_duration_s": 1800}, {}, "none", []),
    ("node_cpu_pressure", {"users_reporting_slow": True}, {}, "notify_oncall", ["node_cpu_pressure.users_report"]),
    ("node_memory_pressure", {"memory_usage": 0.96, "memory_usage_duration_s": 901}, {}, "notify_oncall",
     ["node_memory_pressure.sustained"]),
    ("node_memory_pressure", {"memory_usage": 0.95, "memory_usage_duration_s": 901}, {}, "none", []),
    ("node_memory_pressure", {"memory_usage": 0.99, "memory_usage_duration_s": 900}, {}, "none", []),
    ("node_memory_pressure", {"oom_kills": 1}, {}, "notify_oncall", ["node_memory_pressure.oom_kills"]),
    ("node_memory_pressure", {"oom_kills": 0}, {}, "none", []),
    ("node_memory_pressure", {"cleanup_resolves": False}, {}, "page_oncall", ["tree3.cleanup_failed"]),
    ("node_memory_pressure", {"cleanup_resolves": True}, {}, "none", []),
    ("pod_oomkilled", {"oom_kills_last_hour": 4}, {}, "notify_oncall", ["pod_oomkilled.repeated"]),
    ("pod_oomkilled", {"oom_kills_last_hour": 3}, {}, "none", []),
    ("pod_oomkilled", {"memory_leak_suspected": True}, {}, "notify_oncall", ["pod_oomkilled.memory_leak"]),
    ("pod_oomkilled", {"cause": "memory_leak"}, {}, "notify_oncall", ["pod_oomkilled.memory_leak"]),
    ("pvc_pending", {"pending_s": 901}, {}, "notify_oncall", ["pvc_pending.long_pending"]),
    ("pvc_pending", {"pending_s": 900}, {}, "none", []),
    ("pvc_pending", {"quota_increase_needed": True}, {}, "notify_oncall", ["pvc_pending.quota_increase"]),
    ("pvc_pending", {"cause": "quota_exceeded"}, {}, "notify_oncall", ["pvc_pending.quota_increase"]),
    ("replicas_mismatch", {"mismatch_s": 1801}, {}, "notify_oncall", ["replicas_mismatch.persists"]),
    ("replicas_mismatch", {"mismatch_s": 1800}, {}, "none", []),
    ("replicas_mismatch", {"capacity_issue": True}, {}, "notify_oncall", ["replicas_mismatch.capacity"]),
    ("replicas_mismatch", {"cause": "insufficient_capacity"}, {}, "notify_oncall", ["replicas_mismatch.capacity"]),
    ("low_cache_hit_rate", {"hit_rate": 0.29, "hit_rate_duration_s": 3601}, {}, "notify_oncall",
     ["low_cache_hit_rate.sustained"]),
    ("low_cache_hit_rate", {"hit_rate": 0.30, "hit_rate_duration_s": 9000}, {}, "none", []),
    ("low_cache_hit_rate", {"hit_rate": 0.10, "hit_rate_duration_s": 3600}, {}, "none", []),
    ("low_cache_hit_rate", {"user_facing_latency": True}, {}, "notify_oncall", ["low_cache_hit_rate.user_latency"]),
    # info procedures: nothing, except an unexpected ConfigMap change (matrix 2.16)
    ("deployment_observed", {"cause": "undetermined", "elapsed_s": 9999, "outcome": "rollout_stalled"}, {},
     "none", []),
    ("hpa_scaled", {"outcome": "scaling_too_frequent"}, {}, "none", []),
    ("configmap_changed", {"outcome": "unexpected_change"}, {}, "notify_oncall",
     ["configmap_changed.unexpected_change"]),
    ("configmap_changed", {"cause": "unexpected_change"}, {}, "notify_oncall",
     ["configmap_changed.unexpected_change"]),
    ("configmap_changed", {"outcome": "intentional_change"}, {}, "none", []),
]


@pytest.mark.parametrize("procedure, facts, options, level, rules", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_procedure_criteria(procedure, facts, options, level, rules):
    out = crit(procedure, facts, **options)
    assert (out["level"], out["rule_ids"]) == (level, rules)
    assert len(out["reasons"]) == len(rules) == len(out["criteria"])


def test_every_procedure_and_rule_prefix_is_covered():
    assert set(esc.PROCEDURES) == set(esc.FACTS) == {c[0] for c in CASES}
    assert len(esc.PROCEDURES) == 15
    for procedure, _facts, _options, _level, rules in CASES:
        for rule in rules:
            assert rule.split(".")[0] in (procedure, "tree1", "tree2", "tree3")


def test_recipients_specialists_and_cloud_support():
    out = crit("db_pool_exhausted", {"db_cpu": 0.95, "db_outage_suspected": True})
    assert out["level"] == "page_lead" and out["recipients"] == ["engineering_lead", "dba"]
    out = crit("db_pool_exhausted", {"db_cpu": 0.95})
    assert out["recipients"] == ["dba"]
    out = crit("node_not_ready", {"not_ready_nodes": 10, "total_nodes": 10})
    assert out["cloud_support"] is True and out["recipients"] == ["vp_engineering", "cloud_support"]
    out = crit("cert_expiring", {"days_left": -0.5})
    assert out["recipients"] == ["vp_engineering", "legal"]
    out = crit("pod_crashloop", {"services_crashing": 3, "code_change_needed": True})
    assert out["recipients"] == ["engineering_lead"] and out["channel"] == "page"


def test_reasons_carry_the_figures():
    out = crit("high_error_rate", {"error_rate": 0.3, "error_rate_duration_s": 700})
    assert "error rate 30 % > 20 % for 700 s (> 600 s)" in out["reasons"]
    out = crit("pod_crashloop", {"service": "orchestrator", "service_down_s": 2000})
    assert out["reasons"] == ["critical service orchestrator down for 2000 s (> 1800 s)"]
    out = crit("pod_crashloop", {"critical_service_down_s": 2000})
    assert out["reasons"] == ["a critical service down for 2000 s (> 1800 s)"]


def test_warning_followup_and_custom_warning_levels():
    facts = {"pending_s": 901, "elapsed_s": 3599}
    assert crit("pvc_pending", facts)["level"] == "notify_oncall"
    facts["elapsed_s"] = 3600
    out = crit("pvc_pending", facts)
    assert out["level"] == "page_senior" and out["recipients"] == ["senior_engineer"]
    assert "still open after 3600 s" in out["reasons"][0]
    out = crit("pvc_pending", {"pending_s": 901, "elapsed_s": 61}, warning_level="page_oncall",
               warning_followup_level="page_lead", warning_followup_after_s=60)
    assert out["level"] == "page_lead"
    assert crit("pvc_pending", {"pending_s": 901}, warning_level="page_oncall")["level"] == "page_oncall"
    with pytest.raises(ValueError, match="warning_level"):
        crit("pvc_pending", {}, warning_level="shout")


def test_criteria_input_errors():
    with pytest.raises(ValueError, match="unknown procedure"):
        crit("disk_full")
    with pytest.raises(ValueError, match="facts must be a dict"):
        crit("pod_crashloop", ["services_crashing"])
    with pytest.raises(ValueError, match="'services_crashing' must be a number"):
        crit("pod_crashloop", {"services_crashing": "many"})
    # absent, empty and NaN figures never trigger a criterion
    assert crit("pod_crashloop", {"services_crashing": None, "estimated_resolution_s": ""})["level"] == "none"
    assert crit("db_pool_exhausted", {"db_cpu": math.nan})["level"] == "none"
    assert crit("pod_crashloop", {"rollback_failed": "false", "complete_outage": "no"})["level"] == "none"
    assert crit("pod_crashloop", None)["level"] == "none"


# ---------------------------------------------------------------------------- common criteria
@pytest.mark.parametrize("procedure, severity, level", [
    ("pod_crashloop", "critical", "page_oncall"),
    ("pvc_pending", "warning", "notify_oncall"),
    ("hpa_scaled", "info", "none"),
])
def test_severity_baseline(procedure, severity, level):
    out = full(procedure)
    assert (out["severity"], out["level"]) == (severity, level)
    assert out["rule_ids"] == ([] if level == "none" else ["common.severity_baseline"])
    assert full(procedure, baseline=False)["level"] == "none"


def test_severity_override_and_errors():
    assert full("high_latency", {"severity": "warning"})["level"] == "notify_oncall"
    with pytest.raises(ValueError, match="unknown severity"):
        full("high_latency", {"severity": "urgent"})
    with pytest.raises(ValueError, match="unknown procedure"):
        full("nope")
    with pytest.raises(ValueError, match="unknown escalation option"):
        full("pod_crashloop", {}, root_cause_timeout=5)


@pytest.mark.parametrize("procedure, elapsed, expected", [
    ("pod_crashloop", 900, True), ("pod_crashloop", 899, False),
    ("high_latency", 1199, False), ("high_latency", 1200, True),   # the runbook gives latency 20 min
    ("pvc_pending", 900, True),
    ("configmap_changed", 99999, False),                              # info has no root-cause clock
])
def test_root_cause_timeout(procedure, elapsed, expected):
    out = full(procedure, {"cause": "undetermined", "elapsed_s": elapsed}, baseline=False)
    assert ("common.root_cause_timeout" in out["rule_ids"]) is expected
    if expected:
        assert out["level"] == "page_senior"


def test_root_cause_timeout_needs_undetermined_and_is_configurable():
    assert full("pod_crashloop", {"cause": "oom", "elapsed_s": 5000}, baseline=False)["level"] == "none"
    out = full("pod_crashloop", {"cause": "undetermined", "elapsed_s": 61}, root_cause_timeout_s=60)
    assert out["level"] == "page_senior"
    out = full("high_latency", {"cause": "undetermined", "elapsed_s": 61}, latency_root_cause_timeout_s=60)
    assert "common.root_cause_timeout" in out["rule_ids"]


def test_refused_guardrail_actions():
    refused = [{"allowed": False, "action": "drain_node", "rule": "cluster_health_gate"}]
    out = full("pod_crashloop", {"refused_actions": refused}, baseline=False)
    assert (out["level"], out["rule_ids"]) == ("page_oncall", ["common.guardrail_refused"])
    assert "drain_node (cluster_health_gate)" in out["reasons"][0]
    out = full("pvc_pending", {"refused_actions": ["set_pvc_storage_class"]}, baseline=False)
    assert out["level"] == "notify_oncall"
    allowed = [{"allowed": True, "action": "rollout_restart", "rule": "ok"}]
    assert full("pvc_pending", {"refused_actions": allowed}, baseline=False)["level"] == "none"
    out = full("pvc_pending", {"refused_actions": ["x"]}, baseline=False, refusal_level="ticket")
    assert out["level"] == "ticket"
    out = full("pod_crashloop", {"refused_actions": ["x"]}, baseline=False, refusal_level_critical="page_senior")
    assert out["level"] == "page_senior"


def test_sla_breach_raises_one_level():
    out = full("pod_crashloop", {"sla_breached": ["ack"]})
    assert (out["level"], out["rule_ids"]) == ("page_senior", ["common.severity_baseline", "common.sla_breach"])
    # two clocks breached: still one level
    assert full("pod_crashloop", {"sla_breached": ["ack", "resolve"]})["level"] == "page_senior"
    out = full("pod_crashloop", {"code_change_needed": True, "sla_breached": "resolve"})
    assert out["level"] == "page_vp"
    out = full("pod_crashloop", {"complete_outage": True, "sla_breached": ["resolve"]})
    assert out["level"] == "page_vp" and "already at page_vp" in out["reasons"][-1]
    assert full("hpa_scaled", {"sla_breached": ["review"]})["level"] == "ticket"
    assert full("pvc_pending", {"sla_breached": []})["level"] == "notify_oncall"


def test_sla_status_feeds_escalate():
    incident = {"severity": "critical", "started_at": 0.0, "acknowledged_at": None}
    status = esc.sla_status(incident, now=301)
    assert status["breached"] == ["ack"]
    assert full("pod_crashloop", {"sla": status})["level"] == "page_senior"


def test_everything_at_once_takes_the_highest_and_keeps_all_reasons():
    facts = {"error_rate": 0.6, "error_rate_duration_s": 900, "cause": "undetermined", "elapsed_s": 1000,
             "refused_actions": ["rollout_undo"], "services_affected": 1}
    out = full("high_error_rate", facts)
    assert out["level"] == "page_lead"
    assert out["rule_ids"] == ["tree1.high_error_rate", "high_error_rate.sustained", "high_error_rate.severe",
                               "common.severity_baseline", "common.root_cause_timeout", "common.guardrail_refused"]
    assert out["recipients"] == ["engineering_lead"]
    assert {c["level"] for c in out["criteria"]} == {"page_oncall", "page_senior", "page_lead"}


def test_options_dict_and_keywords_combine():
    options = {"root_cause_timeout_s": 60, "baseline": False}
    facts = {"cause": "undetermined", "elapsed_s": 61}
    assert esc.escalate("pod_crashloop", facts, options)["level"] == "page_senior"
    assert esc.escalate("pod_crashloop", facts, options, root_cause_timeout_s=120)["level"] == "none"


def test_facts_read_are_documented():
    """Docs and code cannot drift: every fact a procedure reads is in FACTS, and every
    documented fact is read by some run."""
    class Recording(dict):
        def get(self, key, default=None):
            seen.add(key)
            return super().get(key, default)

        def __getitem__(self, key):
            seen.add(key)
            return super().__getitem__(key)

    sample = {"severity": "critical", "cause": "undetermined", "elapsed_s": 5000, "sla_breached": ["ack"],
              "refused_actions": ["x"], "service": "orchestrator", "outcome": "unexpected_change",
              "error_rate": 0.5, "not_ready_nodes": 1, "total_nodes": 3, "p95": 1.5, "hit_rate": 0.2,
              "cpu_usage": 0.95, "memory_usage": 0.97, "days_left": 0.5, "db_cpu": 0.95, "db_memory": 0.95,
              "cleanup_resolves": False, "max_connections": 100, "max_connections_required": 200}
    for procedure, documented in esc.FACTS.items():
        read = set()
        for variant in ({}, {"cause": "disk_pressure"}, {"critical_service_down_s": None}):
            seen = set()
            facts = Recording({k: sample.get(k, 1) for k in documented})
            facts.update(variant)
            esc.escalate(procedure, facts)
            assert seen <= set(documented), (procedure, seen - set(documented))
            read |= seen
        assert read == set(documented), (procedure, set(documented) - read)


# ---------------------------------------------------------------------------- SLA clocks
def test_sla_deadlines_per_severity():
    assert esc.sla_deadlines("critical", 1000) == {
        "ack_deadline": 1300, "action_deadline": None, "resolve_deadline": 4600, "review_deadline": None}
    assert esc.sla_deadlines("warning", 1000) == {
        "ack_deadline": 2800, "action_deadline": 4600, "resolve_deadline": 15400, "review_deadline": None}
    assert esc.sla_deadlines("info", "1000") == {
        "ack_deadline": None, "action_deadline": None, "resolve_deadline": None, "review_deadline": 87400}


def test_sla_deadlines_overrides_and_errors():
    assert esc.sla_deadlines("critical", 0, critical_ack_s=60)["ack_deadline"] == 60
    assert esc.sla_deadlines("warning", 0, {"warning_resolve_s": 7200})["resolve_deadline"] == 7200
    with pytest.raises(ValueError, match="unknown severity"):
        esc.sla_deadlines("page", 0)
    with pytest.raises(ValueError, match="opened_at_epoch"):
        esc.sla_deadlines("critical", None)
    with pytest.raises(ValueError, match="unknown escalation option"):
        esc.sla_deadlines("critical", 0, ack_s=5)


@pytest.mark.parametrize("incident, now, expected", [
    # critical, acknowledged and resolved in time
    ({"severity": "critical", "started_at": 0, "acknowledged_at": 300, "resolved_at": 3600}, 9999,
     {"ack_met": True, "resolve_met": True, "breached": []}),
    # acknowledged late, resolved late
    ({"severity": "critical", "started_at": 0, "acknowledged_at": 301, "resolved_at": 3601}, 9999,
     {"ack_met": False, "resolve_met": False, "breached": ["ack", "resolve"]}),
    # clocks still running (exactly at the deadline is not late)
    ({"severity": "critical", "started_at": 0}, 300,
     {"ack_met": None, "resolve_met": None, "breached": [], "ack_remaining_s": 0}),
    ({"severity": "critical", "started_at": 0}, 301, {"ack_met": False, "breached": ["ack"]}),
    # closed_at stands in for resolved_at; opened_at for started_at
    ({"severity": "critical", "opened_at": 100, "acknowledged_at": 150, "closed_at": 3000}, 9999,
     {"ack_met": True, "resolve_met": True, "breached": []}),
    # stored deadlines win over computed ones
    ({"severity": "critical", "started_at": 0, "ack_deadline": 1000, "acknowledged_at": 900}, 950,
     {"ack_met": True, "ack_deadline": 1000}),
    # warning: the action clock only when the incident tracks first_action_at
    ({"severity": "warning", "started_at": 0, "acknowledged_at": 100}, 4000,
     {"ack_met": True, "action_met": None, "action_deadline": None, "breached": []}),
    ({"severity": "warning", "started_at": 0, "acknowledged_at": 100, "first_action_at": None}, 4000,
     {"action_met": False, "breached": ["action"]}),
    ({"severity": "warning", "started_at": 0, "data": {"first_action_at": 3000}}, 4000,
     {"action_met": True, "ack_met": False, "breached": ["ack"]}),
    ({"severity": "warning", "started_at": 0, "acknowledged_at": 10, "resolved_at": 14401}, 20000,
     {"resolve_met": False, "breached": ["resolve"]}),
    # info: reviewed = acknowledged, resolved or closed within 24 h
    ({"severity": "info", "started_at": 0, "acknowledged_at": 86400}, 90000,
     {"review_met": True, "ack_met": None, "resolve_met": None, "breached": []}),
    ({"severity": "info", "started_at": 0}, 86401, {"review_met": False, "breached": ["review"]}),
    ({"severity": "info", "started_at": 0, "closed_at": 90000}, 90001, {"review_met": False, "breached": ["review"]}),
])
def test_sla_status(incident, now, expected):
    out = esc.sla_status(incident, now)
    assert {k: out[k] for k in expected} == expected


def test_sla_status_errors_and_clock(monkeypatch):
    with pytest.raises(ValueError, match="must be a dict"):
        esc.sla_status("incident 4", 0)
    with pytest.raises(ValueError, match="neither started_at nor opened_at"):
        esc.sla_status({"severity": "critical"}, 0)
    with pytest.raises(ValueError, match="unknown severity"):
        esc.sla_status({"severity": None, "started_at": 0}, 0)
    monkeypatch.setattr(esc.time, "time", lambda: 301.0)
    assert esc.sla_status({"severity": "critical", "started_at": 0})["breached"] == ["ack"]
    out = esc.sla_status({"severity": "critical", "started_at": 0}, 0, critical_ack_s=600)
    assert out["ack_deadline"] == 600


# ---------------------------------------------------------------------------- filter plugin
EXPECTED_FILTERS = {"escalate", "escalation_criteria", "escalation_levels", "escalation_rank", "escalation_max",
                    "tree_service_outage", "tree_performance", "tree_infrastructure", "sla_deadlines", "sla_status"}


def test_filter_module_exposes_the_functions():
    from ansible_collections.octollm.alert_response.plugins.filter import escalation as filter_plugin
    filters = filter_plugin.FilterModule().filters()
    assert set(filters) == EXPECTED_FILTERS
    assert filters["escalate"] is esc.escalate and filters["sla_status"] is esc.sla_status


LOADER_SCRIPT = """
import json, sys
from ansible.plugins.loader import filter_loader, init_plugin_loader
init_plugin_loader([sys.argv[1]])
out = {}
for name in json.loads(sys.argv[2]):
    plugin = filter_loader.get("octollm.alert_response." + name)
    out[name] = plugin.j2_function.__module__ + "." + plugin.j2_function.__name__ if plugin else None
out["_probe"] = filter_loader.get("octollm.alert_response.escalate").j2_function("pod_crashloop", {})["level"]
print(json.dumps(out))
"""


def test_filter_loader_finds_the_filters():
    # a fresh interpreter: this one imported ansible_collections before Ansible's
    # collection finder could be installed
    res = subprocess.run([sys.executable, "-c", LOADER_SCRIPT, str(REPO / ".collections"),
                          json.dumps(sorted(EXPECTED_FILTERS))], check=False, text=True, capture_output=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout.strip().splitlines()[-1])
    # the filters are the module_utils functions, exposed by plugins/filter/escalation.py
    module = "ansible_collections.octollm.alert_response.plugins.module_utils.escalation"
    assert {name: found[name] for name in EXPECTED_FILTERS} == {name: f"{module}.{name}" for name in EXPECTED_FILTERS}
    assert found["_probe"] == "page_oncall"


def test_filters_in_a_real_template(tmp_path):
    """ansible-core 2.19 templating (tagged values) end to end."""
    playbook = tmp_path / "pb.yml"
    playbook.write_text("""
- hosts: localhost
  gather_facts: false
  vars:
    facts: {error_rate: 0.6, services_affected: 2, sla_breached: [ack]}
  tasks:
    - name: Escalate
      ansible.builtin.set_fact:
        out:
          esc: "{{ 'high_error_rate' | octollm.alert_response.escalate(facts, baseline=false) }}"
          tree: "{{ 1.0 | octollm.alert_response.tree_service_outage(services_down=2) }}"
          sla: "{{ 'critical' | octollm.alert_response.sla_deadlines(1000) }}"
          rank: "{{ 'page_lead' | octollm.alert_response.escalation_rank }}"
    - name: Write
      ansible.builtin.copy:
        content: "{{ out | to_json }}"
        dest: "{{ dest }}"
""")
    dest = tmp_path / "out.json"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-e", f"dest={dest}"],
                         check=False, cwd=REPO, env=env, text=True, capture_output=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(dest.read_text())
    assert out["esc"]["level"] == "page_vp"    # lead criteria, then one level up for the ack breach
    assert out["tree"]["level"] == "page_vp"
    assert out["sla"]["ack_deadline"] == 1300
    assert int(out["rank"]) == 5


def test_every_rule_id_is_documented():
    """docs/safety.md lists every rule id the trees and criteria can produce."""
    source = Path(__file__).read_text()
    prefixes = "|".join(["tree1", "tree2", "tree3", "common", *esc.PROCEDURES])
    ids = set(re.findall(rf'"((?:{prefixes})\.[a-z_0-9]+)"', source))
    assert len(ids) > 80
    safety = (REPO / "docs/safety.md").read_text()
    missing = sorted(i for i in ids if f"`{i}`" not in safety)
    assert not missing
