"""Log classification and the cause rules of the critical procedures
(plugins/module_utils/diagnosis.py), plus the filter plugin as Ansible loads it.

The log corpus is the test bed's own log profiles (tests/testbed/logs), so the classes
the roles see in the molecule scenarios are the classes asserted here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.octollm.alert_response.plugins.module_utils import diagnosis as dg

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / "tests" / "testbed" / "logs"


# ------------------------------------------------------------------------------ logs
@pytest.mark.parametrize("profile, expected, absent", [
    ("connection-refused", "connection_refused", ["pool_exhausted", "panic", "oom"]),
    ("oom", "oom", ["panic", "connection_refused"]),
    ("panic", "panic", ["oom", "connection_refused", "permission_denied"]),
    ("permission-denied", "permission_denied", ["panic", "connection_refused"]),
    ("rate-limited", "rate_limited", ["connection_refused", "pool_exhausted"]),
    ("pool-exhausted", "pool_exhausted", ["connection_refused", "rate_limited"]),
    ("config-error", "config_error", ["connection_refused", "panic"]),
])
def test_log_profiles_classify_as_their_fault(profile, expected, absent):
    result = dg.classify_lines((LOGS / f"{profile}.log").read_text())
    assert result["counts"].get(expected, 0) >= 1, result
    for cls in absent:
        assert cls not in result["counts"], (cls, result)
    assert result["examples"][expected] and all(len(x) <= dg.MAX_EXAMPLE_CHARS for x in result["examples"][expected])


def test_healthy_log_has_no_class():
    assert dg.classify_lines((LOGS / "healthy.log").read_text())["counts"] == {}


@pytest.mark.parametrize("line, classes", [
    ("2026-11-29T03:00:00.000000000Z stderr F ERROR dial tcp 10.0.0.1:5432: connect: connection refused",
     ["connection_refused"]),
    ("java.lang.OutOfMemoryError: Java heap space", ["oom"]),
    ("Traceback (most recent call last):", ["panic"]),
    ("FATAL: sorry, too many clients already", ["pool_exhausted"]),
    ("HTTP 429 from upstream", ["rate_limited"]),
    ("GET /api/v1/tasks 200 4290ms", []),        # 4290 is not 429
    ("runtime: out of memory", ["oom"]),           # a Go OOM is not a Go runtime error
    ("pods is forbidden: User cannot list", ["permission_denied"]),
    ("", []),
])
def test_classify_line(line, classes):
    assert dg.classify_line(line) == classes


def test_classify_counts_every_line_once_per_class():
    out = dg.classify_lines(["connection refused", "connection refused", "panic: x", "  "])
    assert out == {"lines": 3, "counts": {"connection_refused": 2, "panic": 1},
                   "examples": {"connection_refused": ["connection refused", "connection refused"],
                                "panic": ["panic: x"]}}


def test_merge_counts():
    assert dg.merge_counts({"oom": 1}, None, {"oom": 2, "panic": 1}) == {"oom": 3, "panic": 1}


# ------------------------------------------------------------------------ quantities
@pytest.mark.parametrize("value, factor, expected", [
    ("256Mi", 2, "512Mi"), ("512Mi", 2, "1024Mi"), ("1Gi", 2, "2Gi"), ("500m", 2, "1000m"),
    ("1", 2, "2"), ("0.5", 2, "1"), ("1.5Gi", 1.5, "2.25Gi"),
])
def test_scale_quantity_keeps_the_unit(value, factor, expected):
    assert dg.scale_quantity(value, factor) == expected


def test_quantity_values_and_errors():
    assert dg.quantity("512Mi") == 512 * 2 ** 20
    assert dg.quantity("500m") == 0.5
    assert dg.quantity("2") == 2.0
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        dg.quantity("lots")
    with pytest.raises(ValueError):
        dg.quantity("5Xi")


# ------------------------------------------------------------------------------ onset
def test_onset_of_latest_run():
    s = [[0, "0"], [10, "0.5"], [20, "0"], [30, "0.2"], [40, "0.5"], [50, "0.4"]]
    assert dg.onset_of_latest_run(s, 0.1) == {"onset": 30.0, "beyond_now": True, "duration_s": 20.0,
                                              "since_start": False}


def test_onset_when_not_beyond_now_or_since_start_or_nan():
    assert dg.onset_of_latest_run([[0, "0.5"], [10, "0"]], 0.1)["beyond_now"] is False
    assert dg.onset_of_latest_run([[0, "0.5"], [10, "0.6"]], 0.1)["since_start"] is True
    assert dg.onset_of_latest_run([[0, "0.5"], [10, "NaN"], [20, "0.6"]], 0.1)["onset"] == 20.0
    assert dg.onset_of_latest_run([], 0.1)["onset"] is None
    assert dg.onset_of_latest_run([[0, "2"], [10, "0.5"]], 0.8, above=False)["onset"] == 10.0


@pytest.mark.parametrize("onset, ok, words", [
    (1000.0 + 30, True, "30 s before"),
    (1000.0 - 30, True, "0 s before"),      # within the tolerance: scrape/step skew
    (1000.0 - 600, False, "after the symptom"),
    (1000.0 + 9000, False, "not recent"),
    (None, False, "older than the look-back"),
])
def test_rollout_before_onset(onset, ok, words):
    got, why = dg.rollout_before_onset({"revision": 2, "created_epoch": 1000.0}, onset, 7200, 60)
    assert got is ok and words in why


# -------------------------------------------------------------------- pod_crashloop
def pod(name="app-1", ready=False, problem=True, node="node-0", node_ready=True, **container):
    c = {"name": "app", "ready": ready, "restarts": 5}
    c.update(container)
    return {"name": name, "ready": ready, "problem": problem, "node": node, "node_ready": node_ready,
            "containers": [c]}


def workload(pods, **extra):
    ev = {"exists": True, "namespace": "ns", "name": "app", "pods": pods,
          "containers": [{"name": "app", "image": "ghcr.io/o/app:2",
                          "resources": {"limits": {"memory": "256Mi", "cpu": "500m"}}}],
          "revisions": [{"revision": 2, "current": True, "age_s": 60, "images": ["ghcr.io/o/app:2"],
                         "ready_replicas": 0},
                        {"revision": 1, "current": False, "age_s": 3600, "images": ["ghcr.io/o/app:1"],
                         "ready_replicas": 2}],
          "events": [], "config_refs": [], "volumes": [], "dependencies": [], "log_classes": {}}
    ev.update(extra)
    return {"workload": ev}


def cause(ev, **options):
    return dg.crashloop_cause(ev, options or None)


def test_crashloop_no_fault_when_every_pod_is_fine():
    out = cause(workload([pod(ready=True, problem=False)]))
    assert out["cause"] == "no_fault" and "1 pod(s) Ready" in out["reasons"][0]


def test_crashloop_missing_workload_is_undetermined():
    assert cause({"workload": {"exists": False, "namespace": "ns", "name": "x"}})["cause"] == "undetermined"


def test_scenario1_all_failing_pods_on_a_notready_node_hand_over():
    ev = workload([pod("a", node="n1", node_ready=False, last_terminated_reason="OOMKilled"),
                   pod("b", node="n1", node_ready=False), pod("c", ready=True, problem=False)])
    out = cause(ev)
    assert out["cause"] == "node_not_ready"
    assert out["details"]["handover"] == "node_not_ready" and out["details"]["nodes"] == ["n1"]


def test_scenario1_not_when_some_failing_pod_is_on_a_ready_node():
    ev = workload([pod("a", node="n1", node_ready=False), pod("b", node="n2", last_terminated_reason="OOMKilled")])
    assert cause(ev)["cause"] == "oom"


def test_image_pull_with_known_good_previous_revision():
    out = cause(workload([pod(waiting_reason="ImagePullBackOff")]))
    assert out["cause"] == "image_pull"
    assert out["details"]["known_good"]["revision"] == 1
    assert out["details"]["known_good"]["images"] == ["ghcr.io/o/app:1"]


def test_image_pull_without_known_good_revision():
    ev = workload([pod(waiting_reason="ErrImagePull")])
    ev["workload"]["revisions"][1]["ready_replicas"] = 0
    out = cause(ev)
    assert out["cause"] == "image_pull" and out["details"]["known_good"] is None
    assert any("no known-good image" in r for r in out["reasons"])


def test_config_error_from_waiting_reason_and_missing_configmap():
    ev = workload([pod(waiting_reason="CreateContainerConfigError")],
                  config_refs=[{"kind": "ConfigMap", "name": "app-cfg", "exists": False, "optional": False,
                                "via": ["envFrom"]},
                               {"kind": "Secret", "name": "opt", "exists": False, "optional": True}])
    out = cause(ev)
    assert out["cause"] == "config_error"
    assert any("ConfigMap app-cfg is referenced (envFrom) but does not exist" in r for r in out["reasons"])
    assert [m["name"] for m in out["details"]["missing"]] == ["app-cfg"]


def test_config_error_from_missing_key():
    ev = workload([pod(waiting_reason="CreateContainerConfigError")],
                  config_refs=[{"kind": "Secret", "name": "db", "exists": True, "missing_keys": ["password"]}])
    out = cause(ev)
    assert out["cause"] == "config_error" and any("lacks key(s) password" in r for r in out["reasons"])


def test_volume_mount_from_unbound_claim():
    volume = {"name": "data", "claim": "app-data", "exists": True, "phase": "Pending",
              "storage_class": "gone", "storage_class_exists": False}
    ev = workload([pod(phase="Pending")], volumes=[volume])
    out = cause(ev)
    assert out["cause"] == "volume_mount" and out["details"]["claims"] == ["app-data"]
    assert "StorageClass gone does not exist" in out["reasons"][0]


def test_volume_mount_from_event():
    ev = workload([pod()], events=[{"reason": "FailedMount", "name": "app-1", "message": "timed out"}])
    assert cause(ev)["cause"] == "volume_mount"


def test_oom_doubles_the_limit():
    out = cause(workload([pod(last_terminated_reason="OOMKilled")]))
    assert out["cause"] == "oom"
    assert out["details"]["raises"] == [{"container": "app", "current_memory": "256Mi", "new_memory": "512Mi"}]


def test_oom_factor_option_and_no_limit():
    assert cause(workload([pod(last_terminated_reason="OOMKilled")]), memory_factor=1.5)["details"]["raises"][0][
        "new_memory"] == "384Mi"
    ev = workload([pod(last_terminated_reason="OOMKilled")])
    ev["workload"]["containers"][0]["resources"] = {}
    out = cause(ev)
    assert out["cause"] == "oom" and out["details"]["raises"] == []
    assert any("no memory limit" in r for r in out["reasons"])


def test_oom_from_logs_only():
    assert cause(workload([pod()], log_classes={"oom": 2}))["cause"] == "oom"


def test_dependency_unavailable_names_the_workload_to_restart():
    deps = [{"service": "db", "exists": True, "ready_endpoints": 0,
             "workload": {"kind": "StatefulSet", "name": "db"}},
            {"service": "cache", "exists": True, "ready_endpoints": 1,
             "workload": {"kind": "Deployment", "name": "cache"}}]
    out = cause(workload([pod()], log_classes={"connection_refused": 3}, dependencies=deps))
    assert out["cause"] == "dependency_unavailable"
    assert out["details"]["restart"] == [{"kind": "StatefulSet", "name": "db", "service": "db"}]
    assert "dependency Service db has 0 ready endpoint(s) (StatefulSet db)" in out["reasons"]


def test_dependency_down_without_logs():
    deps = [{"service": "db", "exists": True, "ready_endpoints": 0, "workload": None}]
    out = cause(workload([pod()], dependencies=deps))
    assert out["cause"] == "dependency_unavailable" and out["details"]["restart"] == []


def test_code_bug_after_recent_rollout_rolls_back():
    out = cause(workload([pod(last_terminated_reason="Error")], log_classes={"panic": 2}))
    assert out["cause"] == "code_bug"
    assert out["details"]["rollback"] == {"from_revision": 2, "to_revision": 1}


def test_code_bug_without_recent_rollout_has_no_rollback():
    ev = workload([pod()], log_classes={"panic": 1})
    ev["workload"]["revisions"][0]["age_s"] = 99999
    out = cause(ev)
    assert out["cause"] == "code_bug" and out["details"]["rollback"] is None
    ev["workload"]["revisions"] = ev["workload"]["revisions"][:1]
    assert cause(ev)["details"]["rollback"] is None


def test_permission_denied_unless_a_mount_failed():
    assert cause(workload([pod()], log_classes={"permission_denied": 1}))["cause"] == "permission_denied"
    ev = workload([pod()], log_classes={"permission_denied": 1},
                  events=[{"reason": "FailedMount", "name": "app-1", "message": "x"}])
    assert cause(ev)["cause"] == "volume_mount"


def test_precedence_image_before_oom_before_logs():
    ev = workload([pod(waiting_reason="ImagePullBackOff", last_terminated_reason="OOMKilled")],
                  log_classes={"panic": 1})
    assert cause(ev)["cause"] == "image_pull"
    ev = workload([pod(last_terminated_reason="OOMKilled")], log_classes={"connection_refused": 1})
    assert cause(ev)["cause"] == "oom"


def test_undetermined_names_the_waiting_reasons():
    out = cause(workload([pod(waiting_reason="CrashLoopBackOff")]))
    assert out["cause"] == "undetermined" and "CrashLoopBackOff" in out["reasons"][0]


def test_unknown_option_is_an_error():
    with pytest.raises(ValueError, match="unknown diagnosis option"):
        cause(workload([pod()]), memory_factr=2)


# -------------------------------------------------------------------- node_not_ready
def node(ready="False", message="node failed", heartbeat=5, **true_conditions):
    conds = [{"type": "Ready", "status": ready, "reason": "nodeFailed", "message": message}]
    for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"):
        conds.append({"type": t, "status": "True" if true_conditions.get(t) else "False"})
    return {"node": {"name": "n1", "exists": True, "conditions": conds, "heartbeat_age_s": heartbeat}}


@pytest.mark.parametrize("condition, expected", [
    ("NetworkUnavailable", "network_unavailable"), ("DiskPressure", "disk_pressure"),
    ("MemoryPressure", "memory_pressure"), ("PIDPressure", "pid_pressure"),
])
def test_node_pressure_conditions(condition, expected):
    assert dg.node_cause(node(**{condition: True}))["cause"] == expected


def test_node_order_network_before_disk_before_memory():
    assert dg.node_cause(node(DiskPressure=True, MemoryPressure=True))["cause"] == "disk_pressure"
    assert dg.node_cause(node(NetworkUnavailable=True, DiskPressure=True))["cause"] == "network_unavailable"


def test_node_kubelet_down_and_messages():
    assert dg.node_cause(node(ready="Unknown"))["cause"] == "kubelet_down"
    assert dg.node_cause(node(heartbeat=300))["cause"] == "kubelet_down"
    assert dg.node_cause(node(heartbeat=300), {"heartbeat_stale_s": 600})["cause"] == "undetermined"
    assert dg.node_cause(node(message="PLEG is not healthy"))["cause"] == "kubelet_down"
    assert dg.node_cause(node(message="container runtime network not ready: cni plugin not initialized")
                         )["cause"] == "kubelet_down"
    assert dg.node_cause(node(message="network plugin is not ready: cni config uninitialized")
                         )["cause"] == "network_unavailable"


def test_node_ready_is_no_fault_and_missing_is_undetermined():
    assert dg.node_cause(node(ready="True"))["cause"] == "no_fault"
    assert dg.node_cause(node(ready="True", MemoryPressure=True))["cause"] == "memory_pressure"
    assert dg.node_cause({"node": {"name": "x", "exists": False}})["cause"] == "undetermined"


# ------------------------------------------------------------------- high_error_rate
ROLLOUT = {"revision": 3, "created_epoch": 1000.0, "previous_revision": 2}


def err(**facts):
    base = {"error_rate": 0.5, "onset": 1020.0, "rollout": ROLLOUT}
    base.update(facts)
    return dg.error_rate_cause(base)


def test_error_rate_below_threshold_is_no_fault_and_missing_is_undetermined():
    assert err(error_rate=0.02)["cause"] == "no_fault"
    assert err(error_rate=None)["cause"] == "undetermined"


def test_error_rate_recent_rollout():
    out = err()
    assert out["cause"] == "recent_rollout" and out["details"] == {"from_revision": 3, "to_revision": 2}


def test_scenario2_pool_wins_over_rollout():
    for facts in ({"pool_ratio": 0.97}, {"pool_alert": True}, {"scenario": "S2"}):
        out = err(**facts)
        assert out["cause"] == "db_pool_exhausted" and out["details"]["handover"] == "db_pool_exhausted", facts
    assert err(pool_ratio=0.5)["cause"] == "recent_rollout"


def test_error_rate_rollout_without_previous_revision_falls_through():
    out = err(rollout={"revision": 1, "created_epoch": 1000.0, "previous_revision": None})
    assert out["cause"] == "undetermined" and any("no previous revision" in r for r in out["reasons"])


def test_error_rate_downstream_rate_limit_leak():
    old = {"revision": 3, "created_epoch": -10000.0, "previous_revision": 2}
    out = err(rollout=old, downstream=[{"service": "orchestrator", "p95": 2.5, "ready_endpoints": 3,
                                        "workload": {"kind": "Deployment", "name": "orchestrator"}}])
    assert out["cause"] == "downstream_timeout" and out["details"]["services"][0]["service"] == "orchestrator"
    assert err(rollout=old, downstream=[{"service": "x", "ready_endpoints": 0}])["cause"] == "downstream_timeout"
    assert err(rollout=old, log_classes={"rate_limited": 4})["cause"] == "external_rate_limited"
    assert err(rollout=old, memory_growth_bytes_per_s=10 * 2 ** 20 / 60)["cause"] == "memory_leak"
    assert err(rollout=old)["cause"] == "undetermined"


# ---------------------------------------------------------------------- high_latency
def lat(**facts):
    base = {"p95": 2.4, "onset": 1020.0, "rollout": ROLLOUT}
    base.update(facts)
    return dg.latency_cause(base)


def test_latency_no_fault_rollout_and_scenario3():
    assert lat(p95=1.0)["cause"] == "no_fault"
    assert lat(p95=None)["cause"] == "undetermined"
    assert lat()["cause"] == "recent_rollout"
    out = lat(scenario="S3")
    assert out["cause"] == "cache_ineffective" and out["details"]["handover"] == "low_cache_hit_rate"


def test_latency_cpu_throttled_raises_the_limit_x2():
    cpu = [{"pod": "api-1", "container": "api", "usage_cores": 0.5, "limit_cores": 0.5, "limit": "500m"},
           {"pod": "api-2", "container": "api", "usage_cores": 0.49, "limit_cores": 0.5, "limit": "500m"}]
    out = lat(onset=None, cpu=cpu)
    assert out["cause"] == "cpu_throttled"
    assert out["details"]["raises"] == [{"container": "api", "current_cpu": "500m", "new_cpu": "1000m"}]
    cool = [{"pod": "api-1", "container": "api", "usage_cores": 0.2, "limit_cores": 0.5, "limit": "500m"}]
    assert lat(onset=None, cpu=cool)["cause"] == "undetermined"


def test_latency_downstream_then_cache():
    assert lat(onset=None, downstream=[{"service": "db", "p95": 3}])["cause"] == "downstream_timeout"
    assert lat(onset=None, cache_hit_ratio=0.4)["cause"] == "cache_ineffective"
    assert lat(onset=None, cache_hit_ratio=0.9)["cause"] == "undetermined"


# ---------------------------------------------------------------------- dispatch
def test_diagnose_dispatch_and_unknown_procedure():
    out = dg.diagnose({"error_rate": 0.0}, "high_error_rate", now=5)
    assert out["cause"] == "no_fault" and out["procedure"] == "high_error_rate" and out["at"] == 5
    with pytest.raises(ValueError, match="no diagnosis rules"):
        dg.diagnose({}, "pvc_pending")


def test_filter_plugin_as_ansible_loads_it(tmp_path):
    """The filter runs inside ansible-playbook (collection loader, module_utils import)."""
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"{{ {'workload': {'exists': true, 'pods': [{'name': 'p', 'problem': true,"
        " 'containers': [{'name': 'c', 'last_terminated_reason': 'OOMKilled'}]}],"
        " 'containers': [{'name': 'c', 'resources': {'limits': {'memory': '300Mi'}}}]}}"
        " | octollm.alert_response.diagnose('pod_crashloop') | to_json }}\"\n")
    env = {"ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"), "ANSIBLE_STDOUT_CALLBACK": "json",
           "PATH": str(Path(sys.executable).parent)}
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          str(play)], capture_output=True, text=True, env=env, check=False, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    msg = json.loads(res.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    out = json.loads(msg) if isinstance(msg, str) else msg
    assert out["cause"] == "oom" and out["details"]["raises"][0]["new_memory"] == "600Mi"


# ------------------------------------------------------------------- service_facts
def prom(name, scalar=None, result=None, skipped=False):
    return {"item": {"name": name}, "scalar": scalar, "result": result or [], "skipped": skipped}


def test_rollout_facts_current_and_previous():
    assert dg.rollout_facts(workload([])) == {"revision": 2, "created_epoch": None, "previous_revision": 1,
                                              "age_s": 60, "images": ["ghcr.io/o/app:2"],
                                              "previous_images": ["ghcr.io/o/app:1"]}
    assert dg.rollout_facts({"workload": {"revisions": []}}) is None


def test_service_facts_joins_prometheus_and_the_workload():
    ev = workload([], dependencies=[{"service": "orchestrator", "ready_endpoints": 3, "pods_total": 3,
                                     "workload": {"kind": "Deployment", "name": "orchestrator"}}],
                  log_classes={"rate_limited": 2})
    ev["workload"]["revisions"][0]["created_epoch"] = 1000.0
    results = [
        prom("ratio", 0.5),
        prom("history", result=[{"values": [[990, "0"], [1000, "0"], [1010, "0.3"], [1020, "0.5"]]}]),
        prom("pool", 0.4),
        prom("downstream", result=[{"metric": {"service": "orchestrator"}, "value": [1020, "2.5"]}]),
        prom("cpu", result=[{"metric": {"pod": "app-1", "container": "app"}, "value": [1020, "0.5"]}]),
        prom("services_affected", 2.0),
        prom("memory_growth", skipped=True),
    ]
    f = dg.service_facts(ev, results, "ratio", 0.1, "S2", [0.2])
    assert f["error_rate"] == 0.5 and f["onset"] == 1010.0 and f["onset_known"] is True
    assert f["rollout"]["revision"] == 2 and f["pool_ratio"] == 0.4 and f["services_affected"] == 2
    assert f["downstream"] == [{"service": "orchestrator", "p95": 2.5, "ready_endpoints": 3,
                                "workload": {"kind": "Deployment", "name": "orchestrator"}, "pods_total": 3}]
    assert f["cpu"] == [{"pod": "app-1", "container": "app", "usage_cores": 0.5, "limit": "500m", "limit_cores": 0.5}]
    assert f["memory_growth_bytes_per_s"] is None and f["scenario"] == "S2"
    assert f["over_s"] == {"0.2": 10.0} and f["log_classes"] == {"rate_limited": 2}
    # and the cause functions read them as they are
    assert dg.error_rate_cause(f)["cause"] == "db_pool_exhausted"
    f["scenario"] = None
    assert dg.error_rate_cause(f)["cause"] == "recent_rollout"


def test_service_facts_onset_older_than_the_lookback_is_unknown():
    results = [prom("p95", 2.0), prom("history", result=[{"values": [[0, "2"], [10, "2.1"]]}])]
    f = dg.service_facts(workload([]), results, "p95", 1.0)
    assert f["p95"] == 2.0 and f["onset"] is None and f["onset_known"] is False and f["beyond_for_s"] == 10.0
    assert dg.latency_cause(f)["cause"] == "undetermined"
