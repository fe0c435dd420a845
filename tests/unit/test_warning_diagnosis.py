"""Cause rules of the warning and informational procedures
(plugins/module_utils/warning_diagnosis.py), plus the filter plugin as Ansible loads it.

The evidence dicts have the shapes the modules return (node_usage_info, workload_info,
pvc_info, hpa_info, configmap_info); each test names the runbook branch it pins.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.octollm.alert_response.plugins.module_utils import warning_diagnosis as wd

REPO = Path(__file__).resolve().parents[2]
GI = 2 ** 30
MI = 2 ** 20


# --------------------------------------------------------------------- helpers
def node_ev(now, threshold=0.8, owners=(), top=(), oom=(), above=1, total=4, headroom=("b", "c", "d")):
    return {"node": {"name": "a", "exists": True}, "resource": "cpu",
            "usage": {"now": now, "threshold": threshold, "high": 0.9},
            "cluster": {"total": total, "above": above, "others_mean": 0.1, "others_with_headroom": list(headroom)},
            "owners": list(owners), "top": list(top), "oom": list(oom)}


def owner(name="api", share=0.9, kind="Deployment", replicas=1, hpa=None, usage=7.0, exists=True):
    return {"kind": kind, "namespace": "shop", "name": name, "share": share, "usage": usage, "replicas": replicas,
            "hpa": hpa, "exists": exists}


def series(values, step=10, start=1000):
    return [[start + i * step, str(v)] for i, v in enumerate(values)]


# ------------------------------------------------------------- node_cpu_pressure
def test_cpu_back_under_threshold_is_no_fault():
    out = wd.node_cpu_cause(node_ev(0.5))
    assert out["cause"] == "no_fault" and "no longer holds" in out["reasons"][0]


def test_cpu_missing_node_and_missing_series_are_undetermined():
    assert wd.node_cpu_cause({"node": {"name": "x", "exists": False}})["cause"] == "undetermined"
    assert wd.node_cpu_cause(node_ev(None))["cause"] == "undetermined"


def test_hot_workload_scales_the_deployment_out_x2():
    out = wd.node_cpu_cause(node_ev(0.93, owners=[owner(replicas=3)]))
    assert out["cause"] == "hot_workload"
    assert out["details"]["plan"] == {"action": "scale_out", "kind": "Deployment", "namespace": "shop", "name": "api",
                                      "current_replicas": 3, "new_replicas": 6}


def test_hot_workload_adds_at_least_one_replica():
    plan = wd.node_cpu_cause(node_ev(0.93, owners=[owner(replicas=1)]), {"scale_factor": 1.2})["details"]["plan"]
    assert plan["new_replicas"] == 2


def test_hot_workload_prefers_an_hpa_when_asked():
    plan = wd.node_cpu_cause(node_ev(0.93, owners=[owner(replicas=3)]), {"prefer_hpa": True})["details"]["plan"]
    assert plan["action"] == "enable_hpa" and plan["min_replicas"] == 3 and plan["max_replicas"] == 10
    assert plan["cpu_utilization"] == 70


def test_hot_workload_with_an_hpa_is_not_scaled_by_hand():
    hpa = {"name": "api", "max_replicas": 10, "current_replicas": 10}
    out = wd.node_cpu_cause(node_ev(0.93, owners=[owner(hpa=hpa)]))
    assert out["cause"] == "hot_workload" and out["details"]["plan"] is None
    assert "at its maximum" in out["details"]["recommend"][0]


def test_hot_statefulset_is_recommended_not_scaled():
    out = wd.node_cpu_cause(node_ev(0.93, owners=[owner(kind="StatefulSet")]))
    assert out["details"]["plan"] is None and "not a Deployment" in out["details"]["recommend"][0]


def test_throttled_pods_are_named_but_the_fix_stays_scale_out():
    top = [{"owner_name": "api", "at_limit": True}]
    out = wd.node_cpu_cause(node_ev(0.93, owners=[owner()], top=top))
    assert any("throttled" in r for r in out["reasons"]) and out["details"]["plan"]["action"] == "scale_out"


def test_most_nodes_hot_is_a_capacity_shortfall():
    out = wd.node_cpu_cause(node_ev(0.93, owners=[owner()], above=3, total=4, headroom=("d",)))
    assert out["cause"] == "capacity_shortfall" and out["details"]["plan"] is None
    assert "resize_node_pool" in out["details"]["recommend"][0]


def test_no_headroom_elsewhere_is_a_capacity_shortfall_even_with_few_hot_nodes():
    assert wd.node_cpu_cause(node_ev(0.93, owners=[owner()], above=1, total=4, headroom=()))["cause"] == \
        "capacity_shortfall"


def test_cpu_nobody_explains_is_undetermined():
    out = wd.node_cpu_cause(node_ev(0.95, owners=[owner(share=0.02, usage=0.05)]))
    assert out["cause"] == "undetermined" and "no workload explains it" in out["reasons"][-1]


# ---------------------------------------------------------- node_memory_pressure
def mem_ev(now=0.9, top=(), oom=(), owners=()):
    ev = node_ev(now, threshold=0.85, owners=owners, top=top, oom=oom)
    ev["resource"] = "memory"
    return ev


def leaking(steady=True, share=0.6, kind="Deployment"):
    return {"namespace": "shop", "pod": "api-1", "container": "api", "usage": 20 * GI, "share_of_node": share,
            "owner_kind": kind, "owner_name": "api",
            "trend": {"steady_rise": steady, "first": 2 * GI, "last": 20 * GI, "span_s": 600, "slope_per_min": GI}}


def test_steady_rise_is_a_leak_restarted_with_a_ticket():
    out = wd.node_memory_cause(mem_ev(top=[leaking()]))
    assert out["cause"] == "memory_leak"
    assert out["details"]["plan"] == {"action": "rollout_restart", "kind": "Deployment", "namespace": "shop",
                                      "name": "api", "pod": "api-1"}
    assert "bug ticket" in out["details"]["recommend"][0]


def test_small_leaker_does_not_count():
    assert wd.node_memory_cause(mem_ev(top=[leaking(share=0.01)]))["cause"] == "undetermined"


def test_unowned_leaker_is_recommended():
    out = wd.node_memory_cause(mem_ev(top=[leaking(kind=None)]))
    assert out["cause"] == "memory_leak" and out["details"]["plan"] is None


def test_oom_kills_on_the_node_raise_the_limit_x2():
    oom = [{"namespace": "shop", "pod": "api-1", "container": "api", "owner_kind": "Deployment", "owner_name": "api",
            "limit": "512Mi"},
           {"namespace": "shop", "pod": "api-2", "container": "api", "owner_kind": "Deployment", "owner_name": "api",
            "limit": "512Mi"}]
    out = wd.node_memory_cause(mem_ev(oom=oom))
    assert out["cause"] == "oom"
    assert out["details"]["plan"]["raises"] == [{"kind": "Deployment", "namespace": "shop", "name": "api",
                                                 "container": "api", "current_memory": "512Mi", "new_memory": "1024Mi"}]


def test_a_leak_wins_over_its_own_oom_kills():
    oom = [{"namespace": "shop", "pod": "api-1", "container": "api", "owner_kind": "Deployment", "owner_name": "api",
            "limit": "512Mi"}]
    assert wd.node_memory_cause(mem_ev(top=[leaking()], oom=oom))["cause"] == "memory_leak"


def test_flat_heavy_workload_is_demand_scaled_out():
    out = wd.node_memory_cause(mem_ev(top=[leaking(steady=False)], owners=[owner(usage=20 * GI, replicas=2)]))
    assert out["cause"] == "workload_memory_demand" and out["details"]["plan"]["new_replicas"] == 4


# ---------------------------------------------------------------- pod_oomkilled
def workload(pods, limit="256Mi"):
    return {"kind": "Deployment", "namespace": "shop", "name": "api", "exists": True, "pods": pods,
            "containers": [{"name": "api", "resources": {"limits": {"memory": limit}} if limit else {}}]}


def oom_pod(name="api-1", reason="OOMKilled"):
    return {"name": name, "deleting": False, "containers": [{"name": "api", "last_terminated_reason": reason,
                                                            "restarts": 4}]}


def usage(values, pod="api-1"):
    return [{"metric": {"pod": pod, "container": "api"}, "values": series(values)}]


def test_flat_usage_at_the_limit_is_oom_raised_x2():
    out = wd.oom_cause({"workload": workload([oom_pod()]), "usage": usage([250 * MI] * 8), "kills_last_hour": 1})
    assert out["cause"] == "oom"
    assert out["details"]["plan"]["raises"] == [{"container": "api", "current_memory": "256Mi", "new_memory": "512Mi"}]
    assert any("without a steady climb" in r for r in out["reasons"])


def test_runbook_example_512mi_to_1gi():
    out = wd.oom_cause({"workload": workload([oom_pod()], limit="512Mi"), "usage": [], "kills_last_hour": 1})
    assert out["details"]["plan"]["raises"][0]["new_memory"] == "1024Mi"


def test_more_than_three_kills_in_the_hour_is_a_suspected_leak():
    out = wd.oom_cause({"workload": workload([oom_pod()]), "usage": [], "kills_last_hour": 4})
    assert out["cause"] == "memory_leak" and out["details"]["plan"] is None and out["details"]["kills"] == 4


def test_exactly_three_kills_is_still_raised():
    assert wd.oom_cause({"workload": workload([oom_pod()]), "usage": [], "kills_last_hour": 3})["cause"] == "oom"


def test_steady_climb_before_the_kill_is_a_leak():
    climb = [100 * MI + i * 20 * MI for i in range(8)]
    out = wd.oom_cause({"workload": workload([oom_pod()]), "usage": usage(climb), "kills_last_hour": 1})
    assert out["cause"] == "memory_leak" and any("rose steadily" in r for r in out["reasons"])


def test_no_oomkilled_container_is_no_fault():
    assert wd.oom_cause({"workload": workload([oom_pod(reason="Completed")])})["cause"] == "no_fault"
    deleting = dict(oom_pod(), deleting=True)
    assert wd.oom_cause({"workload": workload([deleting])})["cause"] == "no_fault"


def test_oom_without_a_limit_is_the_node_s():
    out = wd.oom_cause({"workload": workload([oom_pod()], limit=None), "usage": []})
    assert out["cause"] == "undetermined" and out["details"]["handover"] == "node_memory_pressure"


# ------------------------------------------------------------------ pvc_pending
def claim(**kw):
    c = {"namespace": "shop", "name": "data", "exists": True, "phase": "Pending", "class_how": "unset",
         "class_name": None, "class_exists": None, "age_s": 60}
    c.update(kw)
    return c


def pvc_ev(c, **kw):
    ev = {"claim": c, "storage_classes": [{"name": "standard", "default": False}], "default_class": None,
          "events": [], "refusals": [], "quotas": [], "volumes": {"available_fitting": []}, "consumers": []}
    ev.update(kw)
    return ev


def test_unset_class_with_a_default_gets_the_default():
    out = wd.pvc_cause(pvc_ev(claim(), default_class="standard"))
    assert out["cause"] == "no_storage_class"
    assert out["details"]["plan"] == {"action": "set_pvc_storage_class", "storage_class": "standard"}


def test_unset_class_without_default_uses_the_policy_class_only_if_it_exists():
    out = wd.pvc_cause(pvc_ev(claim()), {"fallback_class": "standard"})
    assert out["details"]["plan"]["storage_class"] == "standard"
    out = wd.pvc_cause(pvc_ev(claim()), {"fallback_class": "nope"})
    assert out["details"]["plan"] == {"action": "create_storage_class", "storage_class": None}


def test_named_missing_class_asks_a_person_to_create_it():
    out = wd.pvc_cause(pvc_ev(claim(class_how="named", class_name="fast-ssd", class_exists=False)))
    assert out["cause"] == "no_storage_class" and out["details"]["plan"]["action"] == "create_storage_class"
    assert "cannot change once set" in out["details"]["recommend"][0]


def test_refused_create_by_quota_is_quota_exceeded():
    refusal = {"kind": "StatefulSet", "reason": "FailedCreate",
               "message": 'create Claim data-db-0 ... persistentvolumeclaims "data-db-0" is forbidden: exceeded quota: '
                          "storage, requested: requests.storage=2Gi"}
    quota = {"quota": "storage", "resource": "requests.storage", "hard": "1Gi", "used": "0", "full": False,
             "would_exceed": True}
    out = wd.pvc_cause(pvc_ev(claim(exists=False), refusals=[refusal], quotas=[quota]))
    assert out["cause"] == "quota_exceeded" and out["details"]["plan"]["action"] == "raise_resource_quota"
    assert any("used 0 of 1Gi" in r for r in out["reasons"])


def test_missing_claim_without_refusal_is_undetermined():
    assert wd.pvc_cause(pvc_ev(claim(exists=False)))["cause"] == "undetermined"


def test_bound_is_no_fault_and_lost_is_undetermined():
    assert wd.pvc_cause(pvc_ev(claim(phase="Bound")))["cause"] == "no_fault"
    assert "backup" in wd.pvc_cause(pvc_ev(claim(phase="Lost")))["details"]["recommend"][0]


def test_volumes_pinned_to_missing_nodes_are_an_affinity_mismatch():
    vols = {"available_fitting": [{"name": "pv-1", "node_affinity": True, "matching_nodes": []}]}
    out = wd.pvc_cause(pvc_ev(claim(class_how="none", class_name=""), volumes=vols))
    assert out["cause"] == "pv_node_affinity_mismatch" and out["details"]["plan"]["volumes"] == ["pv-1"]


def test_empty_class_without_volumes_cannot_be_set():
    out = wd.pvc_cause(pvc_ev(claim(class_how="none", class_name="")))
    assert out["cause"] == "no_storage_class" and out["details"]["plan"] is None


def test_wait_for_first_consumer_without_pod_is_by_design():
    c = claim(class_how="named", class_name="standard", class_exists=True, binding_mode="WaitForFirstConsumer")
    assert wd.pvc_cause(pvc_ev(c))["cause"] == "no_fault"
    unscheduled = [{"pod": "p", "scheduled": False, "message": "0/3 nodes are available"}]
    out = wd.pvc_cause(pvc_ev(c, consumers=unscheduled))
    assert out["cause"] == "undetermined" and out["details"]["handover"] == "replicas_mismatch"


def test_provisioner_quota_event_is_quota_exceeded():
    ev = pvc_ev(claim(class_how="named", class_name="standard", class_exists=True),
                events=[{"reason": "ProvisioningFailed", "message": "googleapi: Error 403: QUOTA_EXCEEDED - quota"}])
    assert wd.pvc_cause(ev)["cause"] == "quota_exceeded"


# ------------------------------------------------------------ replicas_mismatch
def dep(pods, available=1, desired=2, events=(), revisions=None, complete=False, current=2):
    return {"kind": "Deployment", "namespace": "shop", "name": "api", "exists": True,
            "replicas": {"desired": desired, "available": available}, "rollout_complete": complete,
            "current_revision": current, "pods": pods, "events": list(events),
            "revisions": revisions if revisions is not None else [
                {"revision": 2, "images": ["registry.invalid/api:2"], "ready_replicas": 0},
                {"revision": 1, "images": ["ghcr.io/api:1"], "ready_replicas": 1}],
            "containers": [{"name": "api", "resources": {"requests": {"cpu": "16"}}}]}


def pod(name="api-2", reason=None, phase="Running", restarts=0, age=120):
    return {"name": name, "problem": True, "deleting": False, "phase": phase, "restarts": restarts, "age_s": age,
            "containers": [{"name": "api", "waiting_reason": reason}]}


def test_image_pull_rolls_back_to_the_revision_with_ready_pods():
    out = wd.replicas_cause(dep([pod(reason="ImagePullBackOff")]))
    assert out["cause"] == "image_pull"
    assert out["details"]["plan"] == {"action": "rollout_undo", "from_revision": 2, "to_revision": 1,
                                      "from_images": ["registry.invalid/api:2"], "to_images": ["ghcr.io/api:1"]}
    assert out["details"]["mismatch_s"] == 120


def test_image_pull_without_a_good_revision_recommends():
    revs = [{"revision": 2, "images": ["registry.invalid/api:2"], "ready_replicas": 0},
            {"revision": 1, "images": ["ghcr.io/api:1"], "ready_replicas": 0}]
    out = wd.replicas_cause(dep([pod(reason="ErrImagePull")], revisions=revs))
    assert out["cause"] == "image_pull" and out["details"]["plan"] is None


def test_crashloop_is_handed_over():
    out = wd.replicas_cause(dep([pod(reason="CrashLoopBackOff", restarts=5)]))
    assert out["cause"] == "crashloop" and out["details"]["handover"] == "pod_crashloop"


def test_insufficient_cpu_from_the_scheduler_is_capacity():
    ev = [{"reason": "FailedScheduling", "message": "0/4 nodes are available: 4 Insufficient cpu. preemption: ..."}]
    out = wd.replicas_cause(dep([pod(phase="Pending")], events=ev))
    assert out["cause"] == "insufficient_capacity" and out["details"]["insufficient"] == ["cpu"]
    assert out["details"]["requests"] == {"api": {"cpu": "16"}}


def test_other_scheduling_failures_are_undetermined():
    ev = [{"reason": "FailedScheduling", "message": "0/4 nodes are available: 4 node(s) didn't match selector"}]
    assert wd.replicas_cause(dep([pod(phase="Pending")], events=ev))["cause"] == "undetermined"


def test_all_available_is_no_fault():
    assert wd.replicas_cause(dep([], available=2, complete=True))["cause"] == "no_fault"


# ---------------------------------------------------------- deployment_observed
def test_complete_rollout_with_new_images():
    w = dep([], available=2, complete=True, revisions=[
        {"revision": 2, "images": ["ghcr.io/api:2"], "age_s": 30}, {"revision": 1, "images": ["ghcr.io/api:1"]}])
    out = wd.rollout_outcome(w)
    assert out["cause"] == "rollout_complete"
    assert out["details"]["change"]["image_changed"] and out["details"]["change"]["previous_revision"] == 1


def test_stalled_and_in_progress_rollouts():
    w = dep([pod(reason="ImagePullBackOff")])
    assert wd.rollout_outcome(w)["cause"] == "rollout_stalled"
    w = dep([], complete=False)
    w["conditions"] = [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]
    assert wd.rollout_outcome(w)["cause"] == "rollout_in_progress"
    w["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    assert wd.rollout_outcome(w)["cause"] == "rollout_stalled"


# ----------------------------------------------------------------- hpa_scaled
def hpa_ev(changes, points=((1000, 2), (1100, 3)), target=70, by="hpa"):
    return {"hpa": {"namespace": "shop", "name": "api", "exists": True, "current_replicas": points[-1][1],
                    "min_replicas": 2, "max_replicas": 10, "cpu_target": target},
            "history": {"changes": changes, "window": "30m", "current_replicas": [list(p) for p in points]},
            "cause": {"by": by, "reason": "New size: 3; reason: cpu resource utilization above target"}}


def test_few_changes_are_expected_scaling_with_direction():
    out = wd.hpa_outcome(hpa_ev(2))
    assert out["cause"] == "expected_scaling" and out["details"]["direction"] == "up"
    assert out["details"]["plan"] is None


def test_more_than_four_changes_raise_the_cpu_target():
    out = wd.hpa_outcome(hpa_ev(5, points=((1000, 4), (1100, 3))))
    assert out["cause"] == "scaling_too_frequent" and out["details"]["direction"] == "down"
    assert out["details"]["plan"] == {"action": "tune_hpa", "current_target": 70, "new_target": 80}


def test_tuning_stops_at_the_maximum_target():
    assert wd.hpa_outcome(hpa_ev(5, target=85))["details"]["plan"]["new_target"] == 90
    out = wd.hpa_outcome(hpa_ev(5, target=90))
    assert out["details"]["plan"] is None and "stabilizationWindowSeconds" in out["details"]["recommend"][0]


def test_changes_from_outside_the_hpa_are_flagged():
    out = wd.hpa_outcome(hpa_ev(1, by="outside_hpa"))
    assert out["cause"] == "expected_scaling" and "metrics-server" in out["details"]["recommend"][0]


# ------------------------------------------------------------- configmap_changed
def cm_ev(keys, writer="argocd-controller", previous=None, consumers=(), records=0, write_time="2026-01-01T10:00:00Z"):
    content = {"hash": "h-" + "-".join(f"{k}{v}" for k, v in sorted(keys.items())), "keys": dict(keys)}
    return {"configmap": {"namespace": "shop", "name": "api-config", "exists": True, "content": content,
                          "last_write": {"manager": writer, "operation": "Update", "time": write_time,
                                         "keys": sorted(keys)}},
            "consumers": list(consumers), "previous": previous, "change_records": records}


ENV = {"kind": "Deployment", "name": "api", "via": ["envFrom"], "refreshes": False,
       "oldest_pod_started": "2026-01-01T09:00:00Z"}
FILES = {"kind": "Deployment", "name": "web", "via": ["volume"], "refreshes": True,
         "oldest_pod_started": "2026-01-01T09:00:00Z"}


def test_diff_against_the_recorded_version_names_keys():
    prev = {"content": {"hash": "old", "keys": {"A": "1", "B": "2", "C": "3"}}, "resource_version": "10"}
    out = wd.configmap_outcome(cm_ev({"A": "1", "B": "9", "D": "4"}, previous=prev),
                               {"known_managers": ["argocd-controller"]})
    assert out["cause"] == "intentional_change"
    assert out["details"]["diff"] == {"added": ["D"], "removed": ["C"], "changed": ["B"]}


def test_unchanged_content_is_no_fault():
    ev = cm_ev({"A": "1"})
    ev["previous"] = {"content": ev["configmap"]["content"], "resource_version": "10"}
    assert wd.configmap_outcome(ev)["cause"] == "no_fault"


def test_unknown_writer_is_unexpected_and_restarts_nothing():
    out = wd.configmap_outcome(cm_ev({"A": "1"}, writer="kubectl-edit", consumers=[ENV]),
                               {"known_managers": ["argocd-controller"], "restart": True})
    assert out["cause"] == "unexpected_change" and out["details"]["plan"] is None


def test_a_change_record_makes_it_intended():
    assert wd.configmap_outcome(cm_ev({"A": "1"}, writer="kubectl-edit", records=1))["cause"] == "intentional_change"


def test_only_env_consumers_started_before_the_change_are_restarted_when_configured():
    late = dict(ENV, name="late", oldest_pod_started="2026-01-01T10:05:00Z")
    ev = cm_ev({"A": "1"}, consumers=[ENV, FILES, late])
    out = wd.configmap_outcome(ev, {"known_managers": ["argocd-controller"], "restart": True})
    assert out["details"]["plan"] == {"action": "rollout_restart",
                                      "workloads": [{"kind": "Deployment", "name": "api", "via": ["envFrom"]}]}
    off = wd.configmap_outcome(ev, {"known_managers": ["argocd-controller"]})
    assert off["details"]["plan"] is None and "configmap_changed_restart_consumers is off" in off["details"]["recommend"][0]


def test_deleted_configmap_is_undetermined():
    assert wd.configmap_outcome({"configmap": {"exists": False}})["cause"] == "undetermined"


# ------------------------------------------------------------------- dispatch
def test_unknown_procedure_and_option_are_refused():
    with pytest.raises(ValueError, match="no warning/info diagnosis rules"):
        wd.diagnose({}, "pod_crashloop")
    with pytest.raises(ValueError, match="unknown node_cpu_pressure diagnosis option"):
        wd.diagnose(node_ev(0.9), "node_cpu_pressure", {"hot": 1})


def test_filter_plugin_as_ansible_loads_it(tmp_path):
    """The filters run inside ansible-playbook (collection loader, module_utils import)."""
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"{{ {'diag': {'node': {'name': 'a', 'exists': true}, 'usage': {'now': 0.5, 'threshold': 0.8}}"
        " | octollm.alert_response.diagnose_warning('node_cpu_pressure'),"
        " 'regex': ['a.b', 'c'] | octollm.alert_response.promql_alternatives,"
        " 'trend': [[0, '1'], [60, '2']] | octollm.alert_response.memory_trend} | to_json }}\"\n")
    env = {"ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"), "ANSIBLE_STDOUT_CALLBACK": "json",
           "PATH": str(Path(sys.executable).parent)}
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          str(play)], capture_output=True, text=True, env=env, check=False, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    msg = json.loads(res.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    out = json.loads(msg) if isinstance(msg, str) else msg
    assert out["diag"]["cause"] == "no_fault"
    assert out["regex"] == "a\\\\.b|c"
    assert out["trend"]["slope_per_min"] == pytest.approx(1.0)


def test_another_procedure_s_config_action_makes_it_intended():
    rec = [{"action": "raise_db_pool_size", "target_key": "deployment/shop/api", "mode": "remediate"}]
    out = wd.configmap_outcome(cm_ev({"A": "1"}, writer="OpenAPI-Generator", records=rec))
    assert out["cause"] == "intentional_change"
    assert any("raise_db_pool_size on deployment/shop/api" in r for r in out["reasons"])
