"""Guardrails (plugins/module_utils/guardrails.py): every rule, with a real SQLite ledger.

Also the pieces of the guardrail module that need no cluster: DSN password hiding, node
counting and the agreement between its DOCUMENTATION and its argument spec.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.octollm.alert_response.plugins.module_utils import guardrails as g
from ansible_collections.octollm.alert_response.plugins.modules import guardrail as module

REPO = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0
TARGET = "deployment/octollm-prod/api"


def req(action="rollout_restart", target_key=TARGET, mode="remediate", params=None, policy=None, **extra):
    out = {"action": action, "target_key": target_key, "mode": mode, "params": params or {}, "policy": policy or {}}
    out.update(extra)
    return out


def verdict(ledger, now=NOW, **kw):
    return g.check(req(**kw), ledger, now=now)


def nodes(total=10, not_ready=0, ready=None, target_ready=True, **extra):
    ready = total - not_ready if ready is None else ready
    return dict(total_nodes=total, not_ready_nodes=not_ready, ready_nodes=ready, target_ready=target_ready, **extra)


# ---------------------------------------------------------------------------- ok + recording
def test_allowed_action_is_recorded(ledger):
    v = verdict(ledger, incident_id=7, procedure="pod_crashloop", params={"container": "api"})
    assert (v.allowed, v.rule, v.mode, v.target_key) == (True, "ok", "remediate", TARGET)
    rows = ledger.actions(target_key=TARGET)
    assert len(rows) == 1 and rows[0]["id"] == v.action_id
    row = rows[0]
    assert (row["action"], row["mode"], row["verdict"], row["rule"], row["incident_id"]) == (
        "rollout_restart", "remediate", "allowed", "ok", 7)
    assert row["params"] == {"container": "api"} and row["reason"] == v.reason and row["at"] == NOW


def test_refusals_are_recorded_too(ledger):
    v = verdict(ledger, action="correct_config")
    row = ledger.actions(target_key=TARGET)[0]
    assert (row["verdict"], row["rule"], row["reason"], row["id"]) == ("refused", "human_only", v.reason, v.action_id)


def test_without_ledger_nothing_is_recorded_and_the_verdict_is_pure():
    a = g.check(req(policy={"require_ledger": False}), None, now=NOW)
    b = g.check(req(policy={"require_ledger": False}), None, now=NOW)
    assert a == b and a.allowed and a.action_id is None


def test_same_inputs_same_verdict(ledger):
    for i in range(2):
        verdict(ledger, now=NOW - 10 - i)
    first = g.check(req(check_mode=True), ledger, now=NOW)
    second = g.check(req(check_mode=True), ledger, now=NOW)
    assert first == second


def test_verdict_as_dict():
    v = g.check(req(action="create_ticket"), None, now=NOW)
    assert v.as_dict() == {"allowed": True, "action": "create_ticket", "mode": "record", "rule": "not_mutating",
                           "reason": v.reason, "target_key": TARGET, "adjusted_params": None, "would_be": None,
                           "action_id": None}


# ---------------------------------------------------------------------------- request validation
@pytest.mark.parametrize("request_, reason", [
    ({"target_key": TARGET, "mode": "remediate"}, "names no action"),
    ({"action": "rollout_restart", "mode": "remediate"}, "names no target_key"),
    ({"action": "rollout_restart", "target_key": TARGET, "mode": "fix"}, "mode must be one of"),
    ({"action": "rollout_restart", "target_key": TARGET, "params": ["x"]}, "params must be a dict"),
    ({"action": "rollout_restart", "target_key": TARGET, "incident_id": "seven"}, "incident_id must be an integer"),
    ("rollout_restart", "must be a dict"),
])
def test_invalid_request(ledger, request_, reason):
    v = g.check(request_, ledger, now=NOW)
    assert (v.allowed, v.rule) == (False, "invalid_request") and reason in v.reason
    assert ledger.actions()[-1]["rule"] == "invalid_request"


def test_unknown_action(ledger):
    v = verdict(ledger, action="reboot_cluster")
    assert (v.allowed, v.rule) == (False, "unknown_action") and "reboot_cluster" in v.reason
    assert ledger.actions()[-1]["verdict"] == "refused"


# ---------------------------------------------------------------------------- action classes
@pytest.mark.parametrize("action", ["create_ticket", "block_deployments", "record_change", "escalate"])
@pytest.mark.parametrize("mode", ["observe", "remediate"])
def test_not_mutating_is_always_allowed_and_not_budgeted(ledger, action, mode):
    for _attempt in range(5):
        v = verdict(ledger, action=action, mode=mode)
        assert (v.allowed, v.rule, v.mode) == (True, "not_mutating", "record")
    assert verdict(ledger).rule == "ok"


HUMAN_ONLY = ["correct_config", "reduce_resource_requests", "raise_db_max_connections", "scale_db_vertically",
              "deploy_pgbouncer", "replace_dns_credentials", "request_rate_limit_increase", "manual_cert_install",
              "create_storage_class", "raise_resource_quota", "recreate_pv", "restore_from_backup", "contact_provider"]
OUT_OF_BAND = ["node_disk_cleanup", "restart_kubelet", "restart_node_network", "resize_node_pool",
               "open_http_firewall"]


@pytest.mark.parametrize("action", HUMAN_ONLY)
def test_human_only(ledger, action):
    # an allow entry does not make a human decision automatic
    v = verdict(ledger, action=action, policy={"allow": [action]})
    assert (v.allowed, v.rule) == (False, "human_only") and "only a person" in v.reason


@pytest.mark.parametrize("action", OUT_OF_BAND)
def test_out_of_band(ledger, action):
    v = verdict(ledger, action=action, target_key="node/node-000001")
    assert (v.allowed, v.rule) == (False, "out_of_band") and "Kubernetes API" in v.reason


def test_action_classes_cover_the_vocabulary():
    classes = {cls: sorted(a for a, c in g.ACTIONS.items() if c == cls) for cls in set(g.ACTIONS.values())}
    assert classes["human_only"] == sorted(HUMAN_ONLY) and classes["out_of_band"] == sorted(OUT_OF_BAND)
    assert set(classes["allow_list"]) >= {"drain_node", "delete_node", "terminate_backend"}
    assert set(g.NODE_GATED) == {"cordon_node", "drain_node", "delete_node"}


# ---------------------------------------------------------------------------- modes
def test_observe_mode_refuses_and_reports_what_would_happen(ledger):
    v = verdict(ledger, mode="observe")
    assert (v.allowed, v.rule, v.mode) == (False, "observe_mode", "observe")
    assert v.would_be == {"allowed": True, "rule": "ok", "reason": v.would_be["reason"], "adjusted_params": None}
    assert "alert_response_mode is observe" in v.reason and "would allow it" in v.reason
    row = ledger.actions()[-1]
    assert (row["mode"], row["verdict"], row["rule"]) == ("observe", "refused", "observe_mode")


def test_observe_verdicts_do_not_use_the_budget(ledger):
    for i in range(5):
        verdict(ledger, mode="observe", now=NOW - i)
    assert verdict(ledger).allowed


def test_observe_would_be_carries_the_remediate_refusal(ledger):
    v = verdict(ledger, mode="observe", target_key="deployment/kube-system/coredns")
    assert v.rule == "observe_mode" and v.would_be["rule"] == "protected_namespace"
    assert "would refuse it (protected_namespace" in v.reason


def test_check_mode_implies_observe_and_writes_nothing(ledger):
    v = g.check(req(check_mode=True), ledger, now=NOW)
    assert (v.allowed, v.rule, v.mode, v.action_id) == (False, "observe_mode", "observe", None)
    assert "check mode (--check) implies observe" in v.reason and v.would_be["allowed"]
    assert ledger.actions() == []
    # even refusals and invalid requests are not written in check mode
    g.check(req(action="correct_config", check_mode=True), ledger, now=NOW)
    g.check({"action": "", "check_mode": True}, ledger, now=NOW)
    assert ledger.actions() == []


def test_procedure_modes_override_the_global_mode(ledger):
    policy = {"procedure_modes": {"pod_crashloop": "observe", "pod_oomkilled": "remediate"}}
    v = verdict(ledger, procedure="pod_crashloop", policy=policy)
    assert v.rule == "observe_mode" and "alert_response_procedure_modes.pod_crashloop is observe" in v.reason
    assert verdict(ledger, procedure="pod_oomkilled", mode="observe", policy=policy).rule == "ok"
    assert verdict(ledger, procedure="high_latency", policy=policy).rule == "ok"
    # --check still wins over a remediate override
    v = g.check(req(procedure="pod_oomkilled", mode="observe", policy=policy, check_mode=True), ledger, now=NOW)
    assert v.rule == "observe_mode"


# ---------------------------------------------------------------------------- protected namespaces
@pytest.mark.parametrize("ns", ["kube-system", "kube-public", "cert-manager"])
def test_protected_namespace_defaults(ledger, ns):
    v = verdict(ledger, target_key=f"deployment/{ns}/x")
    assert (v.allowed, v.rule) == (False, "protected_namespace")
    assert f"namespace {ns} is protected (alert_response_protected_namespaces)" in v.reason


def test_protected_namespace_from_the_namespace_field_and_custom_list(ledger):
    v = verdict(ledger, action="restart_certmanager", target_key="certificate/octollm-prod/api-tls",
                namespace="cert-manager")
    assert v.rule == "protected_namespace"
    assert verdict(ledger, policy={"protected_namespaces": ["octollm-prod"]}).rule == "protected_namespace"
    assert verdict(ledger, target_key="deployment/kube-system/x", policy={"protected_namespaces": []}).rule == "ok"


def test_protected_namespace_lifted_only_by_an_exact_allow_entry(ledger):
    base = dict(action="restart_certmanager", target_key="deployment/cert-manager/cert-manager")
    policy = {"allow": [{"action": "restart_certmanager", "namespace": "cert-manager"}]}
    assert verdict(ledger, **base, policy=policy).rule == "ok"
    for allow in ([{"action": "restart_certmanager", "namespace": "cert-*"}],
                  [{"action": "restart_certmanager"}],
                  [{"action": "rollout_restart", "namespace": "cert-manager"}]):
        assert verdict(ledger, **base, policy={"allow": allow}).rule == "protected_namespace", allow


def test_cluster_scoped_targets_have_no_namespace(ledger):
    assert verdict(ledger, action="uncordon_node", target_key="node/node-000001").rule == "ok"


# ---------------------------------------------------------------------------- allow-list
ALLOW_LISTED = ["drain_node", "delete_node", "terminate_backend", "restart_redis", "raise_db_memory_limit",
                "create_index_concurrently", "switch_to_staging_issuer", "repoint_db_host"]


@pytest.mark.parametrize("action", ALLOW_LISTED)
def test_destructive_actions_need_an_allow_entry(ledger, action):
    v = verdict(ledger, action=action, params=nodes())
    assert (v.allowed, v.rule) == (False, "not_allow_listed") and "alert_response_allow" in v.reason


@pytest.mark.parametrize("entry, target, namespace, procedure, allowed", [
    ("drain_node", "node/node-000001", None, None, True),
    ({"action": "drain_node"}, "node/node-000001", None, None, True),
    ({"action": "drain_node", "target": "node/*"}, "node/node-000001", None, None, True),
    ({"action": "drain_node", "target": "node/node-000002"}, "node/node-000001", None, None, False),
    ({"action": "drain_node", "procedure": "node_not_ready"}, "node/node-000001", None, "node_not_ready", True),
    ({"action": "drain_node", "procedure": "node_not_ready"}, "node/node-000001", None, "pod_crashloop", False),
    ({"action": "delete_node", "target": "node/*"}, "node/node-000001", None, None, False),
    ({"action": "restart_redis", "namespace": "octollm-*"}, "cache/octollm-prod/redis", "octollm-prod", None, True),
    ({"action": "restart_redis", "namespace": "octollm-prod"}, "cache/octollm-dev/redis", "octollm-dev", None, False),
])
def test_allow_entry_matching(ledger, entry, target, namespace, procedure, allowed):
    action = entry if isinstance(entry, str) else entry["action"]
    action = "drain_node" if action == "delete_node" else action   # ask for drain with a delete entry
    v = verdict(ledger, action=action, target_key=target, namespace=namespace, procedure=procedure,
                params=nodes(), policy={"allow": [entry]})
    assert v.allowed is allowed, v.reason


# ---------------------------------------------------------------------------- terminate_backend
DB = "database/octollm-prod/octollm"
APP_ENTRY = {"action": "terminate_backend", "applications": ["report-worker"]}


@pytest.mark.parametrize("params, allow, rule", [
    ({"application_name": "report-worker", "query_age_s": 301}, [APP_ENTRY], "ok"),
    ({"application_name": "report-worker", "query_age_s": 300}, [APP_ENTRY], "ok"),
    ({"application_name": "report-worker", "query_age_s": 299}, [APP_ENTRY], "query_too_young"),
    ({"application_name": "report-worker", "min_query_age": 400}, [APP_ENTRY], "ok"),
    ({"application_name": "report-worker"}, [APP_ENTRY], "invalid_request"),
    ({"application_name": "api", "query_age_s": 900}, [APP_ENTRY], "not_allow_listed"),
    ({"application_name": ["report-worker", "api"], "query_age_s": 900}, [APP_ENTRY], "not_allow_listed"),
    ({"application_name": ["report-worker"], "query_age_s": 900}, [APP_ENTRY], "ok"),
    ({"query_age_s": 900}, [APP_ENTRY], "not_allow_listed"),
    ({"application_name": "report-worker", "query_age_s": 900}, ["terminate_backend"], "not_allow_listed"),
    ({"application_name": "report-worker", "query_age_s": 900}, [{"action": "terminate_backend",
                                                                  "application": "report-worker"}], "ok"),
    ({"application_name": "report-worker", "query_age_s": 500},
     [dict(APP_ENTRY, min_query_age_s=600)], "query_too_young"),
    ({"application_name": "report-worker", "query_age_s": 200},
     [dict(APP_ENTRY, min_query_age_s=100)], "query_too_young"),        # never below the policy floor
    ({"application_name": "report-worker", "query_age_s": 900, "backend_type": "autovacuum worker"},
     [APP_ENTRY], "not_client_backend"),
    ({"application_name": "report-worker", "query_age_s": 900, "backend_type": "client backend"},
     [APP_ENTRY], "ok"),
    ({"application_name": "report-worker", "query_age_s": 900, "superuser": True}, [APP_ENTRY], "not_client_backend"),
])
def test_terminate_backend(ledger, params, allow, rule):
    v = verdict(ledger, action="terminate_backend", target_key=DB, params=params, policy={"allow": allow})
    assert v.rule == rule, v.reason


def test_terminate_backend_custom_minimum(ledger):
    params = {"application_name": "report-worker", "query_age_s": 100}
    policy = {"allow": [APP_ENTRY], "terminate_min_query_age_s": 60}
    assert verdict(ledger, action="terminate_backend", target_key=DB, params=params, policy=policy).allowed


# ---------------------------------------------------------------------------- production namespaces
def test_staging_issuer_never_in_production(ledger):
    policy = {"allow": ["switch_to_staging_issuer"]}
    v = verdict(ledger, action="switch_to_staging_issuer", target_key="certificate/octollm-prod/api-tls",
                policy=policy)
    assert v.rule == "production_namespace" and "alert_response_production_namespaces" in v.reason
    assert verdict(ledger, action="switch_to_staging_issuer", target_key="certificate/octollm-staging/api-tls",
                   policy=policy).rule == "ok"


# ---------------------------------------------------------------------------- caps
@pytest.mark.parametrize("action, params, policy, rule, adjusted", [
    ("raise_memory_limit", {"current_memory": "512Mi", "new_memory": "1Gi"}, {}, "ok", None),
    ("raise_memory_limit", {"current_memory": "512Mi", "new_memory": "1025Mi"}, {}, "cap_memory_ratio", "1Gi"),
    ("raise_memory_limit", {"current_memory": "512Mi", "new_memory": "2Gi"}, {}, "cap_memory_ratio", "1Gi"),
    ("raise_memory_limit", {"current_memory": "4Gi", "new_memory": "8Gi"}, {}, "ok", None),
    ("raise_memory_limit", {"current_memory": "6Gi", "new_memory": "12Gi"}, {}, "cap_memory_ceiling", "8Gi"),
    ("raise_memory_limit", {"current_memory": "8Gi", "new_memory": "9Gi"}, {}, "cap_memory_ceiling", None),
    ("raise_memory_limit", {"current_memory": "1Gi", "new_memory": "512Mi"}, {}, "wrong_direction", None),
    ("raise_memory_limit", {"current_memory": "1Gi", "new_memory": "1024Mi"}, {}, "wrong_direction", None),
    ("raise_memory_limit", {"current_memory": "1Gi"}, {}, "invalid_request", None),
    ("raise_memory_limit", {"current_memory": "lots", "new_memory": "1Gi"}, {}, "invalid_request", None),
    ("raise_memory_limit", {"current_memory": 0, "new_memory": "1Gi"}, {}, "invalid_request", None),
    ("raise_memory_limit", {"current_memory": "1Gi", "new_memory": "3Gi"}, {"memory_ceiling": "2Gi"},
     "cap_memory_ratio", "2Gi"),
    ("raise_memory_limit", {"current_memory": "1Gi", "new_memory": "2Gi"}, {"raise_ratios": {"memory": 1.5}},
     "cap_memory_ratio", "1536Mi"),
    ("raise_memory_limit", {"current_memory": 500_000_000, "new_memory": "1G"}, {}, "ok", None),
    ("raise_redis_memory", {"current_memory": "16Mi", "new_memory": "64Mi"}, {}, "cap_memory_ratio", "32Mi"),
    ("raise_cpu_limit", {"current_cpu": "500m", "new_cpu": "1"}, {}, "ok", None),
    ("raise_cpu_limit", {"current_cpu": "500m", "new_cpu": "1500m"}, {}, "cap_cpu_ratio", "1"),
    ("raise_cpu_limit", {"current_cpu": "3", "new_cpu": "6"}, {}, "cap_cpu_ceiling", "4"),
    ("raise_cpu_limit", {"current_cpu": "4", "new_cpu": "4500m"}, {}, "cap_cpu_ceiling", None),
    ("raise_cpu_limit", {"current_cpu": "750m", "new_cpu": "1500m"}, {"cpu_ceiling": "1200m"},
     "cap_cpu_ceiling", "1200m"),
    ("raise_db_pool_size", {"current_pool_size": 20, "new_pool_size": 40}, {}, "ok", None),
    ("raise_db_pool_size", {"current_pool_size": 15, "new_pool_size": 40}, {}, "cap_pool_size_ratio", 30),
    ("raise_call_timeout", {"current_timeout_s": 5, "new_timeout_s": 10}, {}, "ok", None),
    ("raise_call_timeout", {"current_timeout_s": 5, "new_timeout_s": 11}, {}, "cap_timeout_ratio", 10),
    ("raise_cache_ttl", {"current_ttl_s": 600, "new_ttl_s": 1800}, {}, "ok", None),
    ("raise_cache_ttl", {"current_ttl_s": 600, "new_ttl_s": 1801}, {}, "cap_ttl_ratio", 1800),
])
def test_raise_caps(ledger, action, params, policy, rule, adjusted):
    v = verdict(ledger, action=action, params=params, policy=policy)
    assert v.rule == rule, v.reason
    new_key = [k for k in params if k.startswith("new_")] or [None]
    if adjusted is None:
        assert v.adjusted_params is None
    else:
        assert v.adjusted_params == {**params, new_key[0]: adjusted}
        assert f"the largest allowed is {adjusted}" in v.reason


def test_cap_reason_names_the_variable(ledger):
    v = verdict(ledger, action="raise_memory_limit", params={"current_memory": "512Mi", "new_memory": "2Gi"})
    assert "is x4, more than x2 per action (alert_response_raise_ratios.memory)" in v.reason
    v = verdict(ledger, action="raise_memory_limit", params={"current_memory": "8Gi", "new_memory": "9Gi"})
    assert "above the ceiling 8Gi (alert_response_memory_ceiling)" in v.reason and "already at the ceiling" in v.reason


def test_raise_db_memory_limit_needs_allow_and_caps(ledger):
    params = {"current_memory": "1Gi", "new_memory": "4Gi"}
    assert verdict(ledger, action="raise_db_memory_limit", params=params).rule == "not_allow_listed"
    v = verdict(ledger, action="raise_db_memory_limit", params=params, policy={"allow": ["raise_db_memory_limit"]})
    assert v.rule == "cap_memory_ratio"


@pytest.mark.parametrize("action, params, policy, rule, adjusted", [
    ("scale_out", {"current_replicas": 3, "new_replicas": 10}, {}, "ok", None),
    ("scale_out", {"current_replicas": 3, "new_replicas": 11}, {}, "cap_replicas", {"new_replicas": 10}),
    ("scale_out", {"current_replicas": 12, "new_replicas": 13}, {}, "cap_replicas", None),
    ("scale_out", {"current_replicas": 3, "new_replicas": 3}, {}, "wrong_direction", None),
    ("scale_out", {"current_replicas": 3, "new_replicas": 15}, {"max_replicas": 20}, "ok", None),
    ("scale_out", {"current_replicas": 3}, {}, "invalid_request", None),
    ("scale_in", {"current_replicas": 3, "new_replicas": 1}, {}, "ok", None),
    ("scale_in", {"current_replicas": 3, "new_replicas": 0}, {}, "cap_min_replicas", {"new_replicas": 1}),
    ("scale_in", {"current_replicas": 3, "new_replicas": 4}, {}, "wrong_direction", None),
    ("scale_in", {"current_replicas": 3, "new_replicas": 1}, {"min_replicas": 2}, "cap_min_replicas",
     {"new_replicas": 2}),
    ("scale_in", {"current_replicas": 20, "new_replicas": 15}, {}, "ok", None),   # lowering is fine above max
    ("enable_hpa", {"min_replicas": 2, "max_replicas": 10}, {}, "ok", None),
    ("enable_hpa", {"min_replicas": 2, "max_replicas": 11}, {}, "cap_replicas", {"max_replicas": 10}),
    ("enable_hpa", {"min_replicas": 0, "max_replicas": 5}, {}, "cap_min_replicas", {"min_replicas": 1}),
    ("enable_hpa", {"min_replicas": 5, "max_replicas": 2}, {}, "invalid_request", None),
    ("enable_hpa", {"min_replicas": 2}, {}, "invalid_request", None),
])
def test_replica_caps(ledger, action, params, policy, rule, adjusted):
    v = verdict(ledger, action=action, params=params, policy=policy)
    assert v.rule == rule, v.reason
    assert v.adjusted_params == (None if adjusted is None else {**params, **adjusted})


# ---------------------------------------------------------------------------- cluster-health gate
@pytest.mark.parametrize("params, policy, rule", [
    (nodes(10, 0), {}, "ok"),
    (nodes(10, 3), {}, "ok"),                                   # exactly 30 %: not above
    (nodes(10, 4), {}, "cluster_health_gate"),
    (nodes(3, 1), {}, "cluster_health_gate"),                   # 33 %
    (nodes(3, 1), {"max_notready_share": 0.5}, "min_ready_nodes"),   # 2 Ready, cordon one -> 1 left
    (nodes(10, 1, ready=2, target_ready=False), {}, "ok"),      # the target is already out
    (nodes(3, 0), {"min_ready_nodes": 3}, "min_ready_nodes"),
    (nodes(3, 0), {}, "ok"),
    ({}, {}, "cluster_health_unknown"),
    (nodes(0, 0), {}, "cluster_health_unknown"),
    (nodes(10, 0, nodes_error="cannot list nodes: 403"), {}, "cluster_health_unknown"),
])
@pytest.mark.parametrize("action", ["cordon_node", "drain_node", "delete_node"])
def test_cluster_health_gate(ledger, action, params, policy, rule):
    policy = dict(policy, allow=["drain_node", "delete_node"])
    v = verdict(ledger, action=action, target_key="node/node-000001", params=params, policy=policy)
    assert v.rule == rule, v.reason


def test_cluster_health_reasons(ledger):
    v = verdict(ledger, action="cordon_node", target_key="node/n1", params=nodes(10, 4))
    assert "4 of 10 nodes NotReady (40% > 30%, alert_response_max_notready_share)" in v.reason
    v = verdict(ledger, action="cordon_node", target_key="node/n1", params=nodes(3, 0), policy={"min_ready_nodes": 3})
    assert "leave 2 Ready schedulable nodes, fewer than 3 (alert_response_min_ready_nodes)" in v.reason
    v = verdict(ledger, action="cordon_node", target_key="node/n1", params=nodes(nodes_error="node n1 not found"))
    assert "node n1 not found" in v.reason


def test_uncordon_is_not_gated(ledger):
    assert verdict(ledger, action="uncordon_node", target_key="node/n1", params=nodes(10, 9)).rule == "ok"


# ---------------------------------------------------------------------------- per-incident limits
def test_rollout_undo_once_per_incident(ledger):
    assert verdict(ledger, action="rollout_undo", incident_id=7, now=NOW - 10).rule == "ok"
    v = verdict(ledger, action="rollout_undo", incident_id=7)
    assert v.rule == "incident_limit" and "incident 7" in v.reason
    assert verdict(ledger, action="rollout_undo", incident_id=8, target_key="deployment/octollm-prod/b").rule == "ok"
    assert verdict(ledger, action="rollout_undo", incident_id=7, policy={"per_incident_limits": {"rollout_undo": 2}},
                   ).rule == "ok"


def test_incident_limit_counts_only_allowed_remediations(ledger):
    verdict(ledger, action="rollout_undo", incident_id=9, mode="observe")
    verdict(ledger, action="rollout_undo", incident_id=9, target_key="deployment/kube-system/x")
    assert verdict(ledger, action="rollout_undo", incident_id=9).rule == "ok"
    # without an incident the per-incident limit does not apply (the budget still does)
    assert verdict(ledger, action="rollout_undo").rule == "ok"


@pytest.mark.parametrize("result, again", [
    ({"failed": True, "changed": False, "msg": "the Kubernetes API server is unreachable"}, "ok"),
    ({"failed": True, "changed": True, "msg": "rollout did not become ready"}, "incident_limit"),
    ({"changed": True}, "incident_limit"),
    (None, "incident_limit"),  # the run died before recording a result: it counts
])
def test_incident_limit_skips_an_action_that_failed_without_a_change(ledger, result, again):
    first = verdict(ledger, action="rollout_undo", incident_id=11, now=NOW - 10)
    assert first.rule == "ok" and first.action_id
    outcome = g.action_outcome(result)
    if outcome:
        ledger.set_action_result(first.action_id, outcome)
    assert verdict(ledger, action="rollout_undo", incident_id=11).rule == again
    # the budget still counts every allowed action, failed or not
    assert ledger.count_actions(TARGET, NOW - 60) >= 1


def test_action_outcome_names():
    assert g.action_outcome({"skipped": True, "changed": False}) == "not_run"
    assert g.action_outcome({"failed": True}) == g.ACTION_FAILED_UNCHANGED == "failed"
    assert g.action_outcome({"failed": True, "changed": True}) == "failed_after_change"
    assert g.action_outcome({"changed": True}) == "changed"
    assert g.action_outcome({"changed": False, "msg": "already so"}) == "ok"
    # a procedure's summary of the action (allowed, ok, changed)
    assert g.action_outcome({"allowed": True, "ok": False, "changed": False, "msg": "API unreachable"}) == "failed"
    assert g.action_outcome({"allowed": True, "ok": False, "changed": True}) == "failed_after_change"
    assert g.action_outcome({"allowed": True, "ok": True, "changed": True}) == "changed"
    assert g.action_outcome({"allowed": False, "ok": False, "changed": False}) == "not_run"
    # nothing it understands: no result is written (the limit then counts the action)
    assert g.action_outcome({}) is None
    assert g.action_outcome({"output": "ticket 42"}) is None
    assert g.action_outcome("not a result") is None


# ---------------------------------------------------------------------------- budget
def test_budget_fourth_action_is_refused(ledger):
    for i, action in enumerate(("rollout_restart", "delete_pod", "set_image")):
        assert verdict(ledger, action=action, now=NOW - 300 + i).allowed
    v = verdict(ledger, action="rollout_restart")
    assert (v.allowed, v.rule) == (False, "budget_exhausted")
    free_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 300 + 3600))
    assert "3 remediating action(s) in the last 3600 s already (alert_response_action_budget = 3)" in v.reason
    assert f"the next is possible after {free_at}" in v.reason
    # refusals do not use the budget either: still refused, still exactly 3 allowed
    assert verdict(ledger, now=NOW + 1).rule == "budget_exhausted"
    assert ledger.count_actions(TARGET, NOW - 3600) == 3


def test_budget_window_boundaries(ledger):
    for at in (NOW - 3601, NOW - 3600, NOW - 1):
        ledger.record_action(TARGET, "rollout_restart", "remediate", "allowed", now=at)
    # the action at exactly now - 3600 is still inside the window: 2 used, one left
    assert verdict(ledger).rule == "ok"
    v = verdict(ledger)
    assert v.rule == "budget_exhausted"
    assert f"after {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(NOW))}" in v.reason
    # half a second later the oldest counted one has left the window
    assert verdict(ledger, now=NOW + 0.5).rule == "ok"


def test_budget_is_per_target_and_configurable(ledger):
    for i in range(3):
        verdict(ledger, now=NOW - 10 + i)
    assert verdict(ledger, target_key="deployment/octollm-prod/other").rule == "ok"
    assert verdict(ledger, policy={"action_budget": 4}).rule == "ok"
    assert verdict(ledger, target_key="deployment/octollm-prod/z", policy={"action_budget": 0}).rule == \
        "budget_exhausted"
    assert verdict(ledger, policy={"action_budget": 5, "budget_window_s": 5}).rule == "ok"


def test_budget_needs_a_ledger():
    v = g.check(req(), None, now=NOW)
    assert (v.allowed, v.rule) == (False, "budget_unverifiable") and "alert_response_require_ledger" in v.reason
    assert g.check(req(policy={"require_ledger": False}), None, now=NOW).rule == "ok"


def test_rule_order_first_refusal_decides(ledger):
    # protected namespace before caps before budget
    v = verdict(ledger, action="raise_memory_limit", target_key="deployment/kube-system/x",
                params={"current_memory": "1Gi", "new_memory": "8Gi"}, policy={"action_budget": 0})
    assert v.rule == "protected_namespace"
    v = verdict(ledger, action="raise_memory_limit", params={"current_memory": "1Gi", "new_memory": "8Gi"},
                policy={"action_budget": 0})
    assert v.rule == "cap_memory_ratio"
    v = verdict(ledger, action="drain_node", target_key="node/n1", params=nodes(10, 5))
    assert v.rule == "not_allow_listed"


# ---------------------------------------------------------------------------- policy
@pytest.mark.parametrize("policy, message", [
    ({"action_bugdet": 3}, "unknown policy keys"),
    ({"allow": [{"namespace": "x"}]}, "must be an action name or a dict"),
    ({"allow": [{"action": "drain_node", "nodes": "*"}]}, "unknown keys"),
    ({"allow": ["drain_everything"]}, "unknown action"),
    ({"max_notready_share": 1.5}, "fraction"),
    ({"procedure_modes": {"pod_crashloop": "auto"}}, "procedure_modes"),
    ({"memory_ceiling": "lots"}, "invalid guardrail policy"),
    ({"action_budget": -1}, "must be >= 0"),
    ({"action_budget": "three"}, "invalid guardrail policy"),
])
def test_malformed_policy_raises(policy, message):
    with pytest.raises(g.GuardrailError, match=message):
        g.check(req(policy=policy), None, now=NOW)


def test_policy_defaults_and_none_values():
    policy = g.normalize_policy({"action_budget": None, "raise_ratios": {"cpu": 3}, "allow": ["drain_node"]})
    assert policy["action_budget"] == 3
    assert policy["raise_ratios"] == {"memory": 2.0, "cpu": 3.0, "pool_size": 2.0, "timeout": 2.0, "ttl": 3.0}
    assert policy["allow"] == [{"action": "drain_node", "applications": []}]
    assert policy["memory_ceiling_value"] == 8 * 2 ** 30 and policy["cpu_ceiling_value"] == 4
    assert g.DEFAULT_POLICY["protected_namespaces"] == ["kube-system", "kube-public", "cert-manager"]


# ---------------------------------------------------------------------------- quantities
@pytest.mark.parametrize("text, value", [
    ("512Mi", 512 * 2 ** 20), ("1Gi", 2 ** 30), ("1G", 1e9), ("500m", 0.5), ("2", 2.0), (3, 3.0),
    ("1.5", 1.5), ("1e3", 1000.0), ("100Ki", 102400.0), (" 2Gi ", 2 ** 31),
])
def test_parse_quantity(text, value):
    assert g.parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["lots", "1Xi", "", "-1Gi", True, None])
def test_parse_quantity_rejects(bad):
    with pytest.raises(ValueError):
        g.parse_quantity(bad)


def test_format_quantities():
    memory = [g.format_memory(v) for v in (2 ** 30, 1536 * 2 ** 20, 1e9, 1000, 1001)]
    assert memory == ["1Gi", "1536Mi", "1G", "1k", "1001"]
    assert [g.format_cpu(v) for v in (2.0, 1.5, 0.25)] == ["2", "1500m", "250m"]


# ---------------------------------------------------------------------------- rules and docs agree
def _rule_ids_in_source() -> set:
    src = (REPO / "plugins/module_utils/guardrails.py").read_text()
    ids = set(re.findall(r'_Refusal\(\s*"([a-z_]+)"', src)) | set(re.findall(r'"rule": "([a-z_]+)"', src))
    ids |= {f"cap_{kind}_{what}" for kind in g._RAISES for what in ("ratio",)}
    ids |= {f"cap_{kind}_ceiling" for kind, spec in g._RAISES.items() if spec[4]}
    return ids | {"observe_mode"}


def test_every_rule_is_listed_and_documented():
    assert _rule_ids_in_source() == set(g.RULES)
    safety = (REPO / "docs/safety.md").read_text()
    for rule in g.RULES:
        assert f"`{rule}`" in safety, rule
    for key in g.DEFAULT_POLICY:
        assert f"`{g.variable(key)}`" in safety, key


# ---------------------------------------------------------------------------- the module's own logic
def test_module_documentation_matches_argument_spec():
    doc = yaml.safe_load(module.DOCUMENTATION)
    spec = module.argument_spec()
    ours = {k: v for k, v in spec.items() if k not in module.AUTH_ARG_SPEC}
    assert set(doc["options"]) == set(ours)
    for name, option in ours.items():
        documented = doc["options"][name]
        assert documented.get("type", "str") == option.get("type", "str"), name
        assert documented.get("required", False) == option.get("required", False), name
        assert documented.get("choices") == option.get("choices"), name
        assert documented.get("elements") == option.get("elements"), name
        default = option.get("default")
        if isinstance(default, float) or isinstance(documented.get("default"), float):
            assert float(documented["default"]) == float(default), name
        else:
            assert documented.get("default") == default, name
    # policy options take their defaults from the Python API
    for key in module.POLICY_OPTIONS:
        assert key in g.DEFAULT_POLICY


@pytest.mark.parametrize("dsn, password", [
    ("postgresql://ledger:s3cr%40t@127.0.0.1:5432/octollm_ledger", "s3cr%40t"),
    ("postgresql://ledger@127.0.0.1/octollm_ledger", None),
    ("host=127.0.0.1 user=ledger password=hunter2 dbname=l", "hunter2"),
    ("host=127.0.0.1 password='two words' dbname=l", "two words"),
    ("/var/lib/octollm/ledger.sqlite3", None),
    (None, None),
])
def test_dsn_password(dsn, password):
    assert module.dsn_password(dsn) == password


def _node(name, ready="True", unschedulable=False):
    return {"metadata": {"name": name}, "spec": {"unschedulable": unschedulable} if unschedulable else {},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": ready}]}}


def test_node_counts():
    items = [_node("a"), _node("b", "False"), _node("c", "Unknown"), _node("d", unschedulable=True), _node("e")]
    assert module.node_counts(items, "a") == dict(total_nodes=5, not_ready_nodes=2, ready_nodes=2,
                                                  target_ready=True, target_found=True)
    assert module.node_counts(items, "b")["target_ready"] is False
    assert module.node_counts(items, "d")["target_ready"] is False
    assert module.node_counts(items, "zz")["target_found"] is False
    assert module.node_counts([{"metadata": {"name": "x"}}], "x")["not_ready_nodes"] == 1
