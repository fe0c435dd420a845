"""The pure parts of the Kubernetes modules (plugins/module_utils/workloads.py, nodes.py):
selectors, service hosts, pod and node summaries, rollout/health predicates, the drain
plan and the planning of workload actions (computed without the API). The modules
themselves run against the test bed in the molecule scenarios of the critical procedures.
"""
from __future__ import annotations

import pytest

from ansible_collections.octollm.alert_response.plugins.module_utils import k8s
from ansible_collections.octollm.alert_response.plugins.module_utils import nodes as nd
from ansible_collections.octollm.alert_response.plugins.module_utils import workloads as wl


# ---------------------------------------------------------------------------- selectors
def test_selector_string_and_match():
    sel = {"matchLabels": {"b": "2", "a": "1"},
           "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x", "y"]},
                                {"key": "gone", "operator": "DoesNotExist"}]}
    assert wl.selector_string(sel) == "a=1,b=2,tier in (x,y),!gone"
    assert wl._matches({"a": "1", "b": "2", "tier": "x"}, sel)
    assert not wl._matches({"a": "1", "b": "2", "tier": "z"}, sel)
    assert not wl._matches({"a": "1", "b": "2", "tier": "x", "gone": ""}, sel)


@pytest.mark.parametrize("value, expected", [
    ("postgres", "postgres"), ("postgres:5432", "postgres"), ("http://reflex-layer:8080/x", "reflex-layer"),
    ("redis.ns.svc", "redis"), ("redis.ns.svc.cluster.local:6379", "redis"), ("redis.other.svc", None),
    ("https://api.openai.example/v1", None), ("user:pw@db:5432", "db"), ("", None), ("Not_A_Host", None),
])
def test_service_host(value, expected):
    assert wl.service_host(value, "ns") == expected


def test_owner_of_deployment_pod_without_api_call():
    pod = {"metadata": {"labels": {"pod-template-hash": "7d9f8c"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "orchestrator-7d9f8c", "controller": True}]}}
    assert wl.owner_of(pod) == {"kind": "Deployment", "name": "orchestrator"}
    sts = {"metadata": {"ownerReferences": [{"kind": "StatefulSet", "name": "postgres", "controller": True}]}}
    assert wl.owner_of(sts) == {"kind": "StatefulSet", "name": "postgres"}
    assert wl.owner_of({"metadata": {}}) is None


# ------------------------------------------------------------------------------ pods
def k8s_pod(name, ready=True, waiting=None, last=None, restarts=0, phase="Running", deleting=False):
    cs = {"name": "app", "ready": ready, "restartCount": restarts, "state": {}}
    if waiting:
        cs["state"] = {"waiting": {"reason": waiting, "message": "m"}}
    if last:
        cs["lastState"] = {"terminated": {"reason": last, "exitCode": 137}}
    meta = {"name": name, "labels": {"pod-template-hash": "h2"}, "creationTimestamp": "2026-01-01T00:00:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    return {"metadata": meta, "spec": {"nodeName": "n1"},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [cs]}}


def test_pod_summary_problem_and_reasons():
    p = wl.pod_summary(k8s_pod("a", ready=False, waiting="CrashLoopBackOff", last="OOMKilled", restarts=4), 0, {"h2": 2})
    assert p["problem"] and p["restarts"] == 4 and p["revision"] == 2 and p["node"] == "n1"
    assert p["containers"][0]["waiting_reason"] == "CrashLoopBackOff"
    assert p["containers"][0]["last_terminated_reason"] == "OOMKilled" and p["containers"][0]["last_exit_code"] == 137
    assert not wl.pod_summary(k8s_pod("b"), 0, {})["problem"]
    assert not wl.pod_summary(k8s_pod("c", ready=False, deleting=True), 0, {})["problem"]
    assert wl.pod_summary(k8s_pod("d", phase="Pending", ready=False, waiting="ImagePullBackOff"), 0, {})["problem"]


def test_rollout_complete_and_healthy():
    dep = {"metadata": {"generation": 3}, "spec": {"replicas": 2},
           "status": {"observedGeneration": 3, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2}}
    assert wl.rollout_complete("Deployment", dep)
    dep["status"]["replicas"] = 3  # an old pod is still there
    assert not wl.rollout_complete("Deployment", dep)
    sts = {"metadata": {"generation": 1}, "spec": {"replicas": 1},
           "status": {"observedGeneration": 1, "readyReplicas": 1, "currentRevision": "a", "updateRevision": "b"}}
    assert not wl.rollout_complete("StatefulSet", sts)
    ev = {"exists": True, "rollout_complete": True, "replicas": {}, "pods": [
        wl.pod_summary(k8s_pod("a"), 0, {}), wl.pod_summary(k8s_pod("b", ready=False, deleting=True), 0, {})]}
    assert wl.healthy(ev) == (True, "1 pod(s) Ready, rollout complete")
    ev["pods"].append(wl.pod_summary(k8s_pod("c", ready=False), 0, {}))
    assert wl.healthy(ev)[0] is False


def test_wait_healthy_waits_for_flat_restarts():
    """A clock and a sleep that advance together; the pods turn healthy on the 2nd read
    and a restart on the 4th read breaks the stable window."""
    t = [0.0]
    reads = []

    def collect():
        reads.append(1)
        n = len(reads)
        pods = [wl.pod_summary(k8s_pod("a", ready=n >= 2, restarts=5 if n < 4 else 6), 0, {})]
        return {"exists": True, "rollout_complete": True, "replicas": {}, "pods": pods}

    def sleep(s):
        t[0] += s

    ev, out = wl.wait_healthy(collect, timeout=30, stable_s=10, interval=2, sleep=sleep, clock=lambda: t[0])
    assert out["healthy"] and not out["stable"] and "restarts still rising on a" in out["reason"]
    reads.clear()
    t[0] = 0.0

    def steady():
        return {"exists": True, "rollout_complete": True, "replicas": {},
                "pods": [wl.pod_summary(k8s_pod("a", restarts=5), 0, {})]}

    ev, out = wl.wait_healthy(steady, timeout=30, stable_s=6, interval=2, sleep=sleep, clock=lambda: t[0])
    assert out["healthy"] and out["stable"] and out["restarts"] == {"a": 5}


# ------------------------------------------------------------------------------ actions
def workload(template, annotations=None, revisions=None, kind="Deployment"):
    w = wl.Workload(None, kind, "ns", "app")
    w.obj = {"metadata": {"annotations": annotations or {wl.REVISION: "3"}, "resourceVersion": "42", "uid": "u"},
             "spec": {"replicas": 2, "template": template}}
    return w


TPL = {"metadata": {"labels": {"app": "app"}, "annotations": {"faults.octollm.io/error-rate": "0.5"}},
       "spec": {"containers": [{"name": "app", "image": "app:3", "resources": {
           "limits": {"cpu": "500m", "memory": "256Mi"}}}]}}
OLD = {"metadata": {"labels": {"app": "app", "pod-template-hash": "h2"}},
       "spec": {"containers": [{"name": "app", "image": "app:2", "resources": {
           "limits": {"cpu": "500m", "memory": "256Mi"}}}]}}


def test_rollout_undo_plans_the_previous_template_with_a_resource_version_test():
    act = wl.Actions(workload(TPL))
    revs = [{"revision": 3, "template": TPL, "annotations": {wl.REVISION: "3"}, "images": ["app:3"]},
            {"revision": 2, "template": OLD, "annotations": {wl.REVISION: "2", "sim.octollm.io/rps": "50"},
             "images": ["app:2"]}]
    changed, patch, before, after, msg = act.rollout_undo(revs)
    assert changed and before["revision"] == 3 and after == {"revision": 2, "images": ["app:2"]}
    assert patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    assert "pod-template-hash" not in patch[1]["value"]["metadata"]["labels"]
    assert patch[2]["value"] == {wl.REVISION: "3", "sim.octollm.io/rps": "50"}   # kubectl keeps the revision
    # the guard: not at revision 3 any more -> nothing to undo
    assert act.rollout_undo(revs, from_revision=2)[0] is False
    with pytest.raises(wl.WorkloadError, match="revision 9 not found"):
        act.rollout_undo(revs, to_revision=9)


def test_rollout_undo_refuses_statefulsets_and_knows_when_already_there():
    with pytest.raises(wl.WorkloadError, match="only Deployments"):
        wl.Actions(workload(TPL, kind="StatefulSet")).rollout_undo([])
    same_meta = {"labels": {"app": "app", "pod-template-hash": "x"}, "annotations": TPL["metadata"]["annotations"]}
    same = {"revision": 2, "template": dict(TPL, metadata=same_meta),
            "annotations": {}, "images": ["app:3"]}
    assert wl.Actions(workload(TPL)).rollout_undo([same])[0] is False


def test_set_resources_compares_quantities():
    act = wl.Actions(workload(TPL))
    assert act.set_resources("app", {"cpu": "0.5"}, None)[0] is False           # 0.5 == 500m
    changed, patch, before, after, _msg = act.set_resources(None, {"memory": "512Mi"}, None)
    assert changed and after["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert patch["spec"]["template"]["spec"]["containers"][0]["name"] == "app"
    with pytest.raises(wl.WorkloadError, match="no container 'x'"):
        act.set_resources("x", {"cpu": "1"}, None)


def test_restart_image_scale_are_idempotent():
    tpl = {"metadata": {"annotations": {wl.RESTARTED_AT: "incident-7"}}, "spec": TPL["spec"]}
    act = wl.Actions(workload(tpl))
    assert act.rollout_restart("incident-7")[0] is False
    assert act.rollout_restart("incident-8")[0] is True
    assert act.set_image("app", "app:3")[0] is False and act.set_image("app", "app:2")[0] is True
    assert act.scale(2)[0] is False and act.scale(3)[1] == {"spec": {"replicas": 3}}


# -------------------------------------------------------------------------------- nodes
def node(name, ready="True", unschedulable=False):
    return {"metadata": {"name": name}, "spec": {"unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_read_json_returns_the_body_without_typed_objects_and_frees_the_connection():
    seen, released = {}, []

    class Response:
        data = b'{"items": [{"metadata": {"name": "n1", "creationTimestamp": "2026-11-29T03:00:00Z"}}]}'

        def release_conn(self):
            released.append(True)

    def list_node(*args, **kwargs):
        seen.update(kwargs)
        return Response()

    body = k8s.read_json(list_node, field_selector="spec.nodeName=n1")
    assert body["items"][0]["metadata"] == {"name": "n1", "creationTimestamp": "2026-11-29T03:00:00Z"}
    assert seen == {"_preload_content": False, "field_selector": "spec.nodeName=n1"} and released == [True]


def test_cluster_counts():
    counts = nd.cluster_counts([node("a"), node("b", "False"), node("c", "Unknown"), node("d", unschedulable=True)], "b")
    assert counts == {"total_nodes": 4, "not_ready_nodes": 2, "not_ready": ["b", "c"], "ready_schedulable": 1,
                      "not_ready_share": 0.5, "target_found": True}


def test_node_summary_heartbeat_pressure_and_cordon_owner():
    obj = {"metadata": {"name": "n", "annotations": {nd.CORDONED_BY: "octollm-incident-3"}},
           "spec": {"unschedulable": True, "taints": [{"key": "k", "effect": "NoSchedule"}]},
           "status": {"conditions": [
               {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "lastHeartbeatTime": "1970-01-01T00:01:40Z",
                "lastTransitionTime": "1970-01-01T00:00:40Z"},
               {"type": "MemoryPressure", "status": "True", "lastHeartbeatTime": "1970-01-01T00:01:30Z"}]}}
    s = nd.node_summary(obj, now=160.0)
    assert s["ready"] == "False" and s["heartbeat_age_s"] == 60.0 and s["not_ready_for_s"] == 120.0
    assert s["pressure"] == ["MemoryPressure"] and s["cordoned_by"] == "octollm-incident-3" and s["unschedulable"]


def pod_on_node(name, owner_kind="ReplicaSet", emptydir=False, finished=False, mirror=False):
    meta = {"namespace": "ns", "name": name, "labels": {"pod-template-hash": "h"}}
    if owner_kind:
        meta["ownerReferences"] = [{"kind": owner_kind, "name": "app-h" if owner_kind == "ReplicaSet" else "ds",
                                    "controller": True}]
    if mirror:
        meta["annotations"] = {nd.MIRROR: "x"}
    return nd.classify_pod({"metadata": meta, "spec": {"volumes": [{"emptyDir": {}}] if emptydir else []},
                            "status": {"phase": "Succeeded" if finished else "Running"}}, ["ns"], [])


def test_drain_plan_like_kubectl():
    pods = [pod_on_node("a"), pod_on_node("ds-1", "DaemonSet"), pod_on_node("bare", None), pod_on_node("tmp", emptydir=True),
            pod_on_node("done", finished=True), pod_on_node("static", mirror=True)]
    assert pods[0]["owner_kind"] == "Deployment" and pods[0]["owner_name"] == "app" and pods[0]["critical"]
    evict, skipped, errors = nd.drain_plan(pods, force=False, ignore_daemonsets=True, delete_emptydir_data=False)
    assert [p["name"] for p in evict] == ["a", "done"]
    assert {s["pod"] for s in skipped} == {"ns/ds-1", "ns/static"}
    assert len(errors) == 2 and "ns/bare has no controller" in errors[0] and "emptyDir" in errors[1]
    evict, _skipped, errors = nd.drain_plan(pods, force=True, ignore_daemonsets=True, delete_emptydir_data=True)
    assert not errors and [p["name"] for p in evict] == ["a", "bare", "tmp", "done"]
