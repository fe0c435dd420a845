"""The runner acts with the collection's least-privilege RBAC (rbac/), enforced by the test
bed's API server: it can do what the procedures do, in managed namespaces only, and it can
read no Secret. Every molecule scenario runs as this identity, so a verb missing from rbac/
fails the scenario that needs it."""
from __future__ import annotations

import pytest
from kubernetes import client, config

pytestmark = pytest.mark.testbed
RUNNER = "system:serviceaccount:octollm-system:octollm-runner"


@pytest.fixture(scope="module")
def admin(testbed):
    return config.new_client_from_config(config_file=testbed["KUBECONFIG"])


@pytest.fixture(scope="module")
def runner(testbed):
    return config.new_client_from_config(config_file=testbed["OCTOLLM_RUNNER_KUBECONFIG"])


def allowed(admin, verb, resource, namespace=None, group="", subresource=None) -> bool:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": RUNNER, "groups": ["system:serviceaccounts", "system:serviceaccounts:octollm-system"],
                       "resourceAttributes": {"verb": verb, "resource": resource, "group": group,
                                              "namespace": namespace, "subresource": subresource}}}
    res = client.AuthorizationV1Api(admin).create_subject_access_review(review)
    return res.status.allowed


@pytest.mark.parametrize("verb, resource, group, subresource, namespace", [
    ("list", "pods", "", None, None),
    ("get", "pods", "", "log", "octollm-prod"),
    ("list", "nodes", "", None, None),
    ("patch", "nodes", "", None, None),                       # cordon
    ("create", "pods", "", "eviction", "kube-system"),        # drain evicts what runs on the node
    ("patch", "deployments", "apps", None, "octollm-prod"),   # rollout restart/undo, limits
    ("delete", "pods", "", None, "octollm-prod"),
    ("patch", "configmaps", "", None, "octollm-prod"),
    ("create", "horizontalpodautoscalers", "autoscaling", None, "octollm-prod"),
    ("update", "certificates", "cert-manager.io", "status", "octollm-prod"),
    ("get", "clusterissuers", "cert-manager.io", None, None),
])
def test_the_runner_may_do_what_the_procedures_do(admin, verb, resource, group, subresource, namespace):
    assert allowed(admin, verb, resource, namespace, group, subresource)


@pytest.mark.parametrize("namespace", ["octollm-prod", "kube-system", "default"])
def test_the_runner_reads_no_secret(admin, runner, namespace):
    assert not allowed(admin, "get", "secrets", namespace)
    assert not allowed(admin, "list", "secrets", namespace)
    with pytest.raises(client.ApiException) as exc:
        client.CoreV1Api(runner).list_namespaced_secret(namespace)
    assert exc.value.status == 403


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public"])
@pytest.mark.parametrize("verb, resource, group", [
    ("patch", "deployments", "apps"), ("delete", "pods", ""), ("patch", "configmaps", ""),
    ("patch", "daemonsets", "apps"), ("create", "horizontalpodautoscalers", "autoscaling"),
])
def test_protected_namespaces_are_out_of_reach(admin, namespace, verb, resource, group):
    assert not allowed(admin, verb, resource, namespace, group)


def test_a_real_write_in_kube_system_is_refused(runner):
    """Not only the review: the API server refuses the runner's own request."""
    with pytest.raises(client.ApiException) as exc:
        client.CoreV1Api(runner).patch_namespaced_config_map(
            "kube-root-ca.crt", "kube-system", {"metadata": {"annotations": {"octollm.test/touched": "yes"}}},
            dry_run="All")
    assert exc.value.status == 403


def test_a_write_in_a_managed_namespace_is_accepted(runner):
    res = client.AppsV1Api(runner).patch_namespaced_deployment(
        "orchestrator", "octollm-prod", {"metadata": {"annotations": {"octollm.test/probe": "1"}}}, dry_run="All")
    assert res.metadata.name == "orchestrator"


def test_the_runner_has_no_wildcard(admin):
    assert not allowed(admin, "*", "*", None, "*")
    assert not allowed(admin, "create", "clusterrolebindings", None, "rbac.authorization.k8s.io")
    assert not allowed(admin, "delete", "nodes", None)  # node deletion is out-of-band (human)
