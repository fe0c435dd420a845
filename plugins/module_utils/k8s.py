# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes access for this collection's modules.

Connection options are kubernetes.core's (`kubernetes.core.k8s_auth_options`, the same
K8S_AUTH_* environment variables), so one `module_defaults` block configures both
collections. We use the typed API classes over kubernetes.core's ApiClient: no API
discovery round trips, which matters when a procedure runs per alert.
"""
from __future__ import annotations

import datetime as dt
import json
import traceback

try:
    from kubernetes.client import AppsV1Api, AutoscalingV2Api, CoreV1Api, CustomObjectsApi, PolicyV1Api
    from kubernetes.client.exceptions import ApiException
    HAS_K8S = True
    K8S_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the environment
    HAS_K8S = False
    K8S_IMPORT_ERROR = traceback.format_exc()
    ApiException = Exception

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    HAS_K8S_CORE = True
except ImportError:  # pragma: no cover - kubernetes.core is a declared dependency
    AUTH_ARG_SPEC = {}
    HAS_K8S_CORE = False


def auth_spec() -> dict:
    """The kubernetes.core connection options, to merge into a module's argument_spec."""
    return dict(AUTH_ARG_SPEC)


class Clients:
    """Typed API clients sharing one connection."""

    def __init__(self, api_client):
        self.api_client = api_client
        self.core = CoreV1Api(api_client)
        self.apps = AppsV1Api(api_client)
        self.custom = CustomObjectsApi(api_client)
        self.policy = PolicyV1Api(api_client)
        self.autoscaling = AutoscalingV2Api(api_client)


def clients(module) -> Clients:
    """Connect with the module's kubernetes.core options; fail the module with the next
    step when the connection cannot be configured."""
    if not HAS_K8S:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=K8S_IMPORT_ERROR)
    if not HAS_K8S_CORE:
        module.fail_json(msg="the kubernetes.core collection is required: it ships with the `ansible` package")
    try:
        k8s = get_api_client(module=_AuthOnly(module))
    except Exception as exc:  # CoreException, ConfigException
        module.fail_json(msg=f"cannot configure the Kubernetes client: {exc}; set kubeconfig (or K8S_AUTH_KUBECONFIG)"
                             " or run where an in-cluster ServiceAccount is mounted")
    return Clients(k8s.client.client)


class _AuthOnly:
    """What kubernetes.core's get_api_client needs from a module (AnsibleK8SModule has it,
    a plain AnsibleModule lacks requires/server_side_dry_run)."""

    server_side_dry_run = False

    def __init__(self, module):
        self.params = module.params

    @staticmethod
    def requires(name, version=None, reason=None):
        return None


# re-exported for the modules, which catch it
try:
    from urllib3.exceptions import HTTPError as ConnectionProblem  # pylint: disable=unused-import
except ImportError:  # pragma: no cover - urllib3 comes with the kubernetes client
    class ConnectionProblem(Exception):
        """Stand-in when urllib3 is missing (nothing raises it then)."""


def unreachable(exc) -> str:
    """A connection failure (refused, timed out, TLS) raised by the client library as one
    line with the next step, instead of urllib3's retry chain."""
    reason = getattr(exc, "reason", None) or exc
    return (f"the Kubernetes API server is unreachable ({type(reason).__name__}: {reason}); check that it is "
            "up and that the kubeconfig points at it, then rerun the playbook (the rerun continues the same "
            "incident)")


def api_error(exc, what: str) -> str:
    """A one-line message for an API error, naming the object and the next step."""
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", "") or str(exc)
    if status == 403:
        return f"{what}: forbidden ({reason}); grant the runner's ServiceAccount this verb (see rbac/)"
    if status == 404:
        return f"{what}: not found"
    if status is None:
        return f"{what}: the API server is unreachable ({reason}); check the cluster and retry"
    return f"{what}: API error {status} {reason}"


def to_dict(obj) -> dict:
    """A typed client object as plain JSON-able data (camelCase keys, as the API has them)."""
    if obj is None:
        return {}
    from kubernetes.client import ApiClient
    return ApiClient().sanitize_for_serialization(obj)


def read_json(call, *args, **kwargs) -> dict:
    """Call a typed API method and return the response body as plain JSON data, without
    building typed client objects: for large lists (every Node of a cluster) the typed
    objects cost more than the request (x5 at 1,000 nodes). Same keys as ``to_dict`` gives;
    timestamps stay the API's RFC 3339 strings. Errors raise ``ApiException`` as usual."""
    resp = call(*args, _preload_content=False, **kwargs)
    try:
        return json.loads(resp.data or b"{}")
    finally:
        resp.release_conn()


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def age_seconds(ts) -> float | None:
    """Seconds since a Kubernetes timestamp (datetime or RFC 3339 string)."""
    if ts is None:
        return None
    if isinstance(ts, str):
        ts = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return (now_utc() - ts).total_seconds()


def owner_workload(clients_: Clients, namespace: str, pod) -> tuple[str | None, str | None]:
    """(kind, name) of the controller that owns a pod: Deployment through its ReplicaSet,
    or the StatefulSet/DaemonSet/Job directly."""
    refs = pod.metadata.owner_references or []
    ref = next((r for r in refs if r.controller), refs[0] if refs else None)
    if ref is None:
        return None, None
    if ref.kind == "ReplicaSet":
        try:
            rs = clients_.apps.read_namespaced_replica_set(ref.name, namespace)
        except ApiException:
            return "ReplicaSet", ref.name
        rrefs = rs.metadata.owner_references or []
        dep = next((r for r in rrefs if r.kind == "Deployment"), None)
        return ("Deployment", dep.name) if dep else ("ReplicaSet", ref.name)
    return ref.kind, ref.name


def recent_rollouts(clients_: Clients, namespace: str, window_s: float, deployment: str | None = None) -> list[dict]:
    """ReplicaSets created within the window (a Deployment revision each): what changed
    recently in the namespace (runbook: 'review recent deployments or changes')."""
    out = []
    for rs in clients_.apps.list_namespaced_replica_set(namespace).items:
        owner = next((r.name for r in rs.metadata.owner_references or [] if r.kind == "Deployment"), None)
        if deployment and owner != deployment:
            continue
        age = age_seconds(rs.metadata.creation_timestamp)
        if age is None or age > window_s:
            continue
        ann = rs.metadata.annotations or {}
        out.append({"deployment": owner, "replicaset": rs.metadata.name,
                    "revision": int(ann.get("deployment.kubernetes.io/revision", 0) or 0),
                    "created": rs.metadata.creation_timestamp.isoformat(), "age_s": round(age, 1),
                    "images": [c.image for c in rs.spec.template.spec.containers]})
    return sorted(out, key=lambda r: r["age_s"])
