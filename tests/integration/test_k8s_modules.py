"""workload_info, workload_action, node_info and node_drain against the test bed.

Each mutating module goes through the check / real / check-again / real-again cycle and
is confirmed by an independent read with the admin kubeconfig. Everything happens in a
namespace (and, for the drain, a tainted node) of the test's own, deleted at the end.
The modules run through ansible-playbook with the runner's kubeconfig.
"""
from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import module_runner
import pytest
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
KUBECONFIG = "{{ lookup('env', 'OCTOLLM_RUNNER_KUBECONFIG') }}"

pytestmark = pytest.mark.testbed


def run_tasks(env, tasks):
    """Run tasks [(module, args, check_mode)] in one playbook; returns their results."""
    return module_runner.run_tasks(env, tasks, {"group/octollm.alert_response.k8s": {"kubeconfig": KUBECONFIG}},
                                   diff=True, timeout=600)


@pytest.fixture(scope="module")
def kube(testbed):
    api = config.new_client_from_config(config_file=testbed["KUBECONFIG"])
    return client.CoreV1Api(api), client.AppsV1Api(api), client.PolicyV1Api(api)


@pytest.fixture()
def namespace(kube):
    core = kube[0]
    name = f"crit-itest-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"sim.octollm.io/enabled": "true"}}})
    yield name
    core.delete_namespace(name)


def deployment(name, image="ghcr.io/octollm/app:1.0", replicas=2, extra_spec=None, env=None):
    spec = {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": image, "env": env or [],
                            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}}]}
    spec.update(extra_spec or {})
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "annotations": {"sim.octollm.io/rps": "0"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}, "annotations": {"faults.octollm.io/logs": "healthy"}},
                                  "spec": spec}}}


def wait_for(what, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def ready(apps, ns, name):
    d = apps.read_namespaced_deployment(name, ns)
    return (d.status.observed_generation or 0) >= d.metadata.generation and \
        (d.status.ready_replicas or 0) == d.spec.replicas == (d.status.updated_replicas or 0) == (d.status.replicas or 0)


def test_set_resources_check_real_check_real(testbed_env, kube, namespace):
    _core, apps, _policy = kube
    apps.create_namespaced_deployment(namespace, deployment("app"))
    wait_for("the app", lambda: ready(apps, namespace, "app"))
    rv = apps.read_namespaced_deployment("app", namespace).metadata.resource_version
    args = {"namespace": namespace, "name": "app", "action": "set_resources", "limits": {"memory": "512Mi"}}
    check, real, check2, real2 = run_tasks(testbed_env, [("workload_action", args, True), ("workload_action", args, False),
                                                         ("workload_action", args, True), ("workload_action", args, False)])
    assert check["changed"] and check["msg"].startswith("would have") and check["diff"]["after"]["limits"]["memory"] == "512Mi"
    assert real["changed"] and not check2["changed"] and not real2["changed"], (real, check2, real2)
    d = apps.read_namespaced_deployment("app", namespace)
    assert d.spec.template.spec.containers[0].resources.limits == {"cpu": "500m", "memory": "512Mi"}
    assert rv != d.metadata.resource_version
    # quantities, not strings: 1000m is stored as "1" and is the same limit
    again = run_tasks(testbed_env, [("workload_action", dict(args, limits={"cpu": "1000m"}), False),
                                    ("workload_action", dict(args, limits={"cpu": "1000m"}), False)])
    assert again[0]["changed"] and not again[1]["changed"]


def test_rollout_undo_once_and_workload_info_revisions(testbed_env, kube, namespace):
    _core, apps, _policy = kube
    apps.create_namespaced_deployment(namespace, deployment("app"))
    wait_for("revision 1", lambda: ready(apps, namespace, "app"))
    apps.patch_namespaced_deployment("app", namespace, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "ghcr.io/octollm/app:2.0"}]}}}})
    wait_for("revision 2", lambda: ready(apps, namespace, "app"))
    undo = {"namespace": namespace, "name": "app", "action": "rollout_undo", "from_revision": 2, "wait": True,
            "wait_timeout": 60}
    info, check, real, real2, after = run_tasks(testbed_env, [
        ("workload_info", {"namespace": namespace, "name": "app"}, False),
        ("workload_action", undo, True), ("workload_action", undo, False), ("workload_action", undo, False),
        ("workload_info", {"namespace": namespace, "name": "app", "wait": {"timeout": 30, "stable_s": 2,
                                                                           "interval": 1}}, False)])
    revs = info["workload"]["revisions"]
    assert [r["revision"] for r in revs] == [2, 1] and revs[0]["current"] and revs[0]["images"] == ["ghcr.io/octollm/app:2.0"]
    assert info["workload"]["current_revision"] == 2 and info["workload"]["rollout_complete"]
    assert check["changed"] and real["changed"] and real["wait"]["healthy"], real
    assert not real2["changed"] and "not 2" in real2["msg"], real2        # never undoes the undo
    assert after["wait"]["healthy"] and after["wait"]["stable"]
    d = apps.read_namespaced_deployment("app", namespace)
    assert d.spec.template.spec.containers[0].image == "ghcr.io/octollm/app:1.0"
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "3"


def test_workload_info_config_refs_never_return_secret_values(testbed_env, kube, namespace):
    core, apps, _policy = kube
    value = secrets.token_hex(16)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "db"}, "stringData": {"password": value}})
    env = [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
           {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}},
           {"name": "CACHE", "valueFrom": {"configMapKeyRef": {"name": "missing-cm", "key": "x"}}}]
    apps.create_namespaced_deployment(namespace, deployment("app", env=env, replicas=1))
    # the runner's own identity (rbac/) may not read Secrets: the reference is reported as
    # unknown with the reason, and the rest of the evidence is still gathered
    (result,) = run_tasks(testbed_env, [("workload_info", {"namespace": namespace, "name": "app"}, False)])
    refs = {r["name"]: r for r in result["workload"]["config_refs"]}
    assert refs["db"]["exists"] is None and "forbidden" in refs["db"]["error"]
    assert refs["missing-cm"]["exists"] is False
    assert value not in json.dumps(result)
    # an identity granted "get secrets" (a cluster that chooses to): key names, never values
    admin = {"namespace": namespace, "name": "app", "kubeconfig": testbed_env["KUBECONFIG"]}
    (result,) = run_tasks(testbed_env, [("workload_info", admin, False)])
    refs = {r["name"]: r for r in result["workload"]["config_refs"]}
    assert refs["db"]["exists"] and refs["db"]["key_names"] == ["password"] and refs["db"]["missing_keys"] == ["user"]
    assert refs["missing-cm"]["exists"] is False
    assert value not in json.dumps(result)


def test_node_drain_cycle_respects_the_budget_and_our_cordon(testbed_env, kube, namespace):
    core, apps, policy = kube
    node = f"{namespace}-node"
    core.create_node({"metadata": {"name": node, "annotations": {"kwok.x-k8s.io/node": "fake"},
                                   "labels": {"type": "kwok", "octollm.io/test-node": node}},
                      "spec": {"taints": [{"key": "octollm.io/test-node", "value": node, "effect": "NoSchedule"}]},
                      "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                                 "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"}}})
    try:
        wait_for("the node", lambda: any(c.type == "Ready" and c.status == "True"
                                         for c in core.read_node(node).status.conditions or []))
        pref = {"weight": 100, "preference": {"matchExpressions": [{"key": "octollm.io/test-node", "operator": "In",
                                                                    "values": [node]}]}}
        apps.create_namespaced_deployment(namespace, deployment("app", replicas=3, extra_spec={
            "tolerations": [{"key": "octollm.io/test-node", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [pref]}}}))
        policy.create_namespaced_pod_disruption_budget(namespace, {"metadata": {"name": "app"}, "spec": {
            "maxUnavailable": 1, "selector": {"matchLabels": {"app": "app"}}}})

        def on_node():
            return [p for p in core.list_namespaced_pod(namespace, field_selector=f"spec.nodeName={node}").items
                    if not p.metadata.deletion_timestamp]

        wait_for("the app on the node", lambda: len(on_node()) == 3 and ready(apps, namespace, "app"))
        drain = {"name": node, "timeout": 60, "owner": "itest", "wait_rescheduled": 60}
        info, check, real, check2, real2 = run_tasks(testbed_env, [
            ("node_info", {"name": node, "critical_namespaces": [namespace]}, False),
            ("node_drain", drain, True), ("node_drain", drain, False), ("node_drain", drain, True),
            ("node_drain", drain, False)])
        assert info["pods_summary"]["total"] == 3 and info["pods_summary"]["critical"] == 3
        assert info["node"]["ready"] == "True" and not info["node"]["unschedulable"]
        # the cluster counts (read as raw JSON) agree with an independent typed read
        nodes = core.list_node().items
        assert info["cluster"]["total_nodes"] == len(nodes) and info["cluster"]["target_found"]
        assert info["cluster"]["not_ready"] == sorted(n.metadata.name for n in nodes if not any(
            c.type == "Ready" and c.status == "True" for c in n.status.conditions or []))
        assert info["node"]["heartbeat_age_s"] is not None and info["node"]["heartbeat_age_s"] < 600
        assert check["changed"] and check["cordoned"] and len(check["to_evict"]) == 3 and not check["evicted"]
        assert real["changed"] and len(real["evicted"]) == 3 and real["rescheduled"]["ok"], real
        assert not check2["changed"] and not real2["changed"]
        n = core.read_node(node)
        assert n.spec.unschedulable and n.metadata.annotations["octollm.io/cordoned-by"] == "itest"
        assert on_node() == [] and ready(apps, namespace, "app")
        # our cordon is given back; a person's cordon is not
        back, again = run_tasks(testbed_env, [("node_drain", {"name": node, "state": "uncordon", "owner": "x"}, False),
                                              ("node_drain", {"name": node, "state": "uncordon", "owner": "x"}, False)])
        assert back["changed"] and not again["changed"]
        n = core.read_node(node)
        assert not n.spec.unschedulable and "octollm.io/cordoned-by" not in (n.metadata.annotations or {})
        core.patch_node(node, {"spec": {"unschedulable": True}})
        (foreign,) = run_tasks(testbed_env, [("node_drain", {"name": node, "state": "uncordon", "owner": "x"}, False)])
        assert not foreign["changed"] and foreign["foreign"] and core.read_node(node).spec.unschedulable
    finally:
        core.delete_node(node)


def test_drain_that_a_budget_blocks_reverts_its_cordon(testbed_env, kube, namespace):
    core, apps, policy = kube
    node = f"{namespace}-node"
    core.create_node({"metadata": {"name": node, "annotations": {"kwok.x-k8s.io/node": "fake"},
                                   "labels": {"type": "kwok", "octollm.io/test-node": node}},
                      "spec": {"taints": [{"key": "octollm.io/test-node", "value": node, "effect": "NoSchedule"}]},
                      "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                                 "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"}}})
    try:
        wait_for("the node", lambda: any(c.type == "Ready" and c.status == "True"
                                         for c in core.read_node(node).status.conditions or []))
        apps.create_namespaced_deployment(namespace, deployment("app", replicas=2, extra_spec={
            "tolerations": [{"key": "octollm.io/test-node", "operator": "Exists", "effect": "NoSchedule"}],
            "nodeSelector": {"octollm.io/test-node": node}}))
        policy.create_namespaced_pod_disruption_budget(namespace, {"metadata": {"name": "app"}, "spec": {
            "minAvailable": 2, "selector": {"matchLabels": {"app": "app"}}}})
        wait_for("the app", lambda: ready(apps, namespace, "app"))
        (failed,) = run_tasks(testbed_env, [("node_drain", {"name": node, "timeout": 4, "interval": 1}, False)])
        assert failed["failed"] and failed["reverted"] and "disruption budget" in failed["msg"], failed
        assert "retry later or raise the PodDisruptionBudget" in failed["msg"]
        assert not core.read_node(node).spec.unschedulable
    finally:
        core.delete_node(node)


def test_restart_of_a_statefulset_stuck_on_an_unready_pod(testbed_env, kube, namespace):
    """kubectl rollout restart alone never replaces an unready pod of an OrderedReady
    StatefulSet (the controller waits for it to be Ready first): the module deletes it."""
    core, apps, _policy = kube
    sts = deployment("db", replicas=1)
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "db"
    apps.create_namespaced_stateful_set(namespace, sts)

    def pod_ready():
        pods = [p for p in core.list_namespaced_pod(namespace, label_selector="app=db").items
                if p.metadata.deletion_timestamp is None]
        return pods and all(c.type != "Ready" or c.status == "True" for c in pods[0].status.conditions or []) and \
            any(c.type == "Ready" and c.status == "True" for c in pods[0].status.conditions or [])
    wait_for("db-0 Ready", pod_ready)
    old_uid = core.read_namespaced_pod("db-0", namespace).metadata.uid
    # the dependency wedges: its pod stops being Ready (kwok stage octollm-pod-not-ready)
    core.patch_namespaced_pod("db-0", namespace, {"metadata": {"labels": {"faults.octollm.io/not-ready": "true"}}})
    wait_for("db-0 not Ready", lambda: not pod_ready())
    args = {"kind": "StatefulSet", "namespace": namespace, "name": "db", "action": "rollout_restart",
            "restarted_at": "2026-11-29T08:00:00Z", "wait": True, "wait_timeout": 90}
    (check,) = run_tasks(testbed_env, [("workload_action", args, True)])
    assert check["changed"] and check["deleted"] == ["db-0"] and "failed" not in check
    assert core.read_namespaced_pod("db-0", namespace).metadata.uid == old_uid   # check mode deleted nothing
    (real,) = run_tasks(testbed_env, [("workload_action", args, False)])
    assert not real.get("failed"), real.get("msg")
    assert real["changed"] and real["deleted"] == ["db-0"] and "unready pod(s) db-0" in real["msg"]
    assert real["wait"]["healthy"]
    assert core.read_namespaced_pod("db-0", namespace).metadata.uid != old_uid
