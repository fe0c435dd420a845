"""Smoke tests: each part of the test bed is the real thing and behaves like it.

Every test creates what it needs in its own namespace (or its own node) and removes it,
so the shared sample workloads in octollm-prod are left as they are.
"""
from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid

import psycopg
import pytest
import redis
import yaml
from kubernetes import client, config

pytestmark = pytest.mark.testbed


def wait(what, fn, timeout=60.0, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def api(testbed):
    return config.new_client_from_config(config_file=testbed["KUBECONFIG"])


@pytest.fixture()
def namespace(api):
    core = client.CoreV1Api(api)
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def deployment(name, replicas=2, labels=None, annotations=None, image="registry.k8s.io/pause:3.10"):
    labels = {"app": name, **(labels or {})}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": labels, "annotations": annotations or {}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}},
    }


def prom(testbed, query):
    url = f"{testbed['OCTOLLM_PROMETHEUS_URL']}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)["data"]["result"]


def test_api_server_reports_the_built_version(api):
    info = client.VersionApi(api).get_code()
    assert info.git_version == "v1.36.3"
    assert (info.major, info.minor) == ("1", "36")


def test_deployment_gets_replicaset_and_running_pods(api, namespace):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=3))
    # controller-manager: a ReplicaSet owned by the Deployment
    rs = wait("a ReplicaSet", lambda: apps.list_namespaced_replica_set(namespace).items, 30)
    assert rs[0].metadata.owner_references[0].kind == "Deployment"

    # scheduler + kwok: pods bound to simulated nodes and Running/Ready
    def running():
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        ok = [p for p in pods if p.status.phase == "Running" and p.spec.node_name
              and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
        return ok if len(ok) == 3 else None
    pods = wait("3 running pods", running, 60)
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert all(p.spec.node_name in nodes for p in pods)
    assert all(nodes[p.spec.node_name].metadata.annotations.get("kwok.x-k8s.io/node") == "fake" for p in pods)
    assert wait("deployment available", lambda: apps.read_namespaced_deployment(
        "web", namespace).status.available_replicas == 3, 30)


def test_crashloop_pod_restart_count_rises(api, namespace):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment(
        "crash", replicas=1, labels={"faults.octollm.io/crashloop": "true"},
        annotations={"faults.octollm.io/delay": "2s", "faults.octollm.io/reason": "Error"}))

    def restarts():
        pods = core.list_namespaced_pod(namespace, label_selector="app=crash").items
        st = pods[0].status.container_statuses if pods else None
        return st[0] if st and st[0].restart_count else None
    first = wait("a first restart", restarts, 60)
    assert first.state.waiting.reason == "CrashLoopBackOff"
    assert first.last_state.terminated.reason == "Error"
    later = wait("more restarts", lambda: (r := restarts()) and r.restart_count >= first.restart_count + 2 and r, 60)
    assert later.restart_count > first.restart_count


def test_oom_fault_ends_when_the_limit_is_raised(api, namespace):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    dep = deployment("oom", replicas=1, labels={"faults.octollm.io/oom": "true"},
                     annotations={"faults.octollm.io/delay": "2s"})
    dep["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "256Mi"}}
    apps.create_namespaced_deployment(namespace, dep)

    def last_reason():
        pods = [p for p in core.list_namespaced_pod(namespace, label_selector="app=oom").items
                if not p.metadata.deletion_timestamp]
        st = pods[0].status.container_statuses if pods else None
        return st[0].last_state.terminated.reason if st and st[0].last_state.terminated else None
    assert wait("OOMKilled", last_reason, 60) == "OOMKilled"
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "512Mi"}}}]}}}}
    apps.patch_namespaced_deployment("oom", namespace, patch)
    assert wait("deployment available after the raise", lambda: apps.read_namespaced_deployment(
        "oom", namespace).status.available_replicas == 1 and apps.read_namespaced_deployment(
        "oom", namespace).status.updated_replicas == 1, 60)


def test_node_not_ready_is_tainted_by_the_node_lifecycle_controller(api):
    core = client.CoreV1Api(api)
    name = f"smoke-node-{uuid.uuid4().hex[:6]}"
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"type": "kwok", "kubernetes.io/hostname": name}},
            "spec": {"taints": [{"key": "smoke", "effect": "NoSchedule"}]},
            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"},
                       "capacity": {"cpu": "1", "memory": "1Gi", "pods": "10"}}}
    core.create_node(node)
    try:
        def ready():
            return next((c.status for c in core.read_node(name).status.conditions or [] if c.type == "Ready"), None)

        wait("the new node Ready", lambda: ready() == "True", 60)
        core.patch_node(name, {"metadata": {"labels": {"node-not-ready.stage.kwok.x-k8s.io": "true"},
                                            "annotations": {"node-not-ready.stage.kwok.x-k8s.io/type": "DiskPressure"}}})
        wait("Ready=False", lambda: ready() == "False", 60)
        taints = wait("not-ready taints", lambda: {t.key for t in core.read_node(name).spec.taints or []}
                      & {"node.kubernetes.io/not-ready"} and {t.key for t in core.read_node(name).spec.taints}, 60)
        assert "node.kubernetes.io/not-ready" in taints
        conds = {c.type: c.status for c in core.read_node(name).status.conditions}
        assert conds["DiskPressure"] == "True"
    finally:
        core.delete_node(name)


def test_rbac_refuses_a_namespaced_identity_outside_its_namespace(api, namespace, testbed, tmp_path):
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "pod-reader"},
                                            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "reader"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]})
    token = core.create_namespaced_service_account_token(
        "reader", namespace, {"spec": {"expirationSeconds": 600}}).status.token
    admin = yaml.safe_load(open(testbed["KUBECONFIG"]))
    cfg = {"apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
           "users": [{"name": "reader", "user": {"token": token}}],
           "contexts": [{"name": "reader", "context": {"cluster": admin["clusters"][0]["name"], "user": "reader"}}],
           "current-context": "reader"}
    path = tmp_path / "reader.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    reader = client.CoreV1Api(config.new_client_from_config(config_file=str(path)))
    assert reader.list_namespaced_pod(namespace).items == []
    with pytest.raises(client.ApiException) as exc:
        reader.list_namespaced_pod("octollm-prod")
    assert exc.value.status == 403
    with pytest.raises(client.ApiException) as exc:
        reader.list_namespaced_secret(namespace)
    assert exc.value.status == 403


def test_pod_logs_come_through_the_api(api, namespace, testbed):
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    apps = client.AppsV1Api(api)
    # the simulator's log agent only watches namespaces labelled for it
    core.patch_namespace(namespace, {"metadata": {"labels": {"sim.octollm.io/enabled": "true"}}})
    apps.create_namespaced_deployment(namespace, deployment(
        "talker", replicas=1, annotations={"faults.octollm.io/logs": "connection-refused"}))
    pod = wait("a running pod", lambda: next((p for p in core.list_namespaced_pod(namespace).items
                                              if p.status.phase == "Running"), None), 60)
    wait("its Logs object", lambda: custom.list_namespaced_custom_object(
        "kwok.x-k8s.io", "v1alpha1", namespace, "logs")["items"], 30)
    text = wait("log lines", lambda: core.read_namespaced_pod_log(pod.metadata.name, namespace, container="app"), 30)
    assert "connection refused" in text
    prev = core.read_namespaced_pod_log(pod.metadata.name, namespace, container="app", previous=True)
    assert "Connection refused" in prev


def test_pvc_is_provisioned_by_the_simulated_storage_class(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_persistent_volume_claim(namespace, {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "kwok-volume",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    wait("Bound", lambda: core.read_namespaced_persistent_volume_claim("data", namespace).status.phase == "Bound", 30)
    core.create_namespaced_persistent_volume_claim(namespace, {
        "metadata": {"name": "orphan"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "does-not-exist",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    time.sleep(3)
    assert core.read_namespaced_persistent_volume_claim("orphan", namespace).status.phase == "Pending"


def test_postgres_answers_a_query(testbed):
    with psycopg.connect(testbed["OCTOLLM_PG_DSN"], connect_timeout=5) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        assert int(version.split(".")[0]) >= 13
        # the runner role may read every session and signal backends, nothing more
        roles = {r[0] for r in conn.execute(
            "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON m.roleid = b.oid "
            "JOIN pg_roles u ON m.member = u.oid WHERE u.rolname = current_user")}
        assert roles == {"pg_read_all_stats", "pg_signal_backend"}
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is False


def test_redis_answers_info(testbed):
    r = redis.Redis.from_url(testbed["OCTOLLM_REDIS_URL"])
    info = r.info("memory")
    assert info["maxmemory"] == 16 * 1024 * 1024
    assert info["maxmemory_policy"] == "allkeys-lru"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=int(testbed["OCTOLLM_REDIS_PORT"]), password="wrong").ping()


def test_prometheus_scrapes_real_exporters(testbed):
    with urllib.request.urlopen(testbed["OCTOLLM_PROMETHEUS_URL"] + "/api/v1/targets", timeout=5) as r:
        targets = {t["labels"]["job"]: t["health"] for t in json.load(r)["data"]["activeTargets"]}
    assert targets == {"prometheus": "up", "kube-state-metrics": "up", "simulator": "up",
                       "redis": "up", "postgres": "up"}
    # kube-state-metrics sees the cluster, the exporters their servers
    assert prom(testbed, 'kube_deployment_spec_replicas{namespace="octollm-prod",deployment="orchestrator"}')
    assert prom(testbed, "redis_up")[0]["value"][1] == "1"
    assert prom(testbed, "pg_up")[0]["value"][1] == "1"
    owners = prom(testbed, 'octollm:pod_owner_node:info{namespace="octollm-prod",owner_name="orchestrator"}')
    assert len(owners) == 3 and all(o["metric"]["node"].startswith("node-") for o in owners)


def test_steered_fault_fires_a_runbook_alert_through_alertmanager(testbed):
    sim, am_sink = testbed["OCTOLLM_SIMULATOR_URL"], testbed["OCTOLLM_SIMULATOR_URL"] + "/sinks/alertmanager"
    service = "reflex-layer"

    def post(url, body, method="POST"):
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def deliveries():
        with urllib.request.urlopen(am_sink, timeout=5) as r:
            return [a for d in json.load(r) for a in d["body"]["alerts"]
                    if a["labels"]["alertname"] == "HighErrorRate" and a["labels"].get("service") == service]
    before = len(deliveries())
    post(sim + "/steer", {"services": {f"octollm-prod/{service}": {"error_rate": 0.6}}})
    try:
        firing = wait("HighErrorRate delivered", lambda: [a for a in deliveries()[before:] if a["status"] == "firing"], 90, 1)
        alert = firing[-1]
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["owner_kind"] == "Deployment" and alert["labels"]["owner_name"] == service
        assert alert["fingerprint"] and alert["startsAt"]
    finally:
        post(sim + "/steer", {"services": {f"octollm-prod/{service}": None}})
    resolved = wait("the resolved notification", lambda: [a for a in deliveries()[before:] if a["status"] == "resolved"], 120, 1)
    assert resolved[-1]["endsAt"] != "0001-01-01T00:00:00Z"


def test_alertmanager_authenticates_to_the_event_source_with_the_token(testbed):
    with urllib.request.urlopen(testbed["OCTOLLM_ALERTMANAGER_URL"] + "/api/v2/status", timeout=5) as r:
        status = json.load(r)
    cfg = yaml.safe_load(status["config"]["original"])
    hooks = cfg["receivers"][0]["webhook_configs"]
    eda = next(h for h in hooks if h["url"].endswith(f":{testbed['OCTOLLM_EDA_PORT']}/alertmanager"))
    # Alertmanager hides secrets in its status API; the token is configured, not exposed
    assert eda["http_config"]["authorization"]["credentials"] == "<secret>"
    assert eda["send_resolved"] is True
