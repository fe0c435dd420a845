# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence and actions for one Deployment or StatefulSet (modules workload_info and
workload_action).

Everything is read with label selectors (the workload's own selector, a Service's
selector), field selectors (events of type Warning) or by name: nothing is listed
cluster-wide. Objects are handled as plain API dicts (camelCase, as ``kubectl get -o
json`` shows them). Secret values are never returned: only key names.
"""
from __future__ import annotations

import copy
import datetime as dt
import re
import time

from ansible_collections.octollm.alert_response.plugins.module_utils.diagnosis import (
    classify_lines,
    merge_counts,
    quantity,
)
from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ApiException, api_error, to_dict

KINDS = ("Deployment", "StatefulSet")
BAD_WAITING = ("CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
               "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "RegistryUnavailable")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
# kubectl rollout undo keeps these Deployment annotations and copies the rest from the
# ReplicaSet of the revision (k8s.io/kubectl/pkg/polymorphichelpers/rollback.go)
UNDO_SKIP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", REVISION,
                         "deployment.kubernetes.io/revision-history", "deployment.kubernetes.io/desired-replicas",
                         "deployment.kubernetes.io/max-replicas", "deprecated.deployment.rollback.to")
DEFAULT_DEPENDENCY_KEYS = r"(_HOST|_URL|_ADDR|_ADDRESS|_ENDPOINT|_SERVICE)$"
MAX_EVENTS = 20


class WorkloadError(Exception):
    """An error message that names the object and the next step."""


def _kind(kind: str) -> str:
    for k in KINDS:
        if k.lower() == str(kind).lower():
            return k
    raise WorkloadError(f"kind {kind!r} is not supported: use Deployment or StatefulSet")


def _ts(value):
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _age(value, now):
    t = _ts(value)
    return None if t is None else round(now - t, 1)


def selector_string(selector: dict) -> str:
    """A LabelSelector (matchLabels + matchExpressions) as a label selector string."""
    parts = [f"{k}={v}" for k, v in sorted((selector or {}).get("matchLabels", {}).items())]
    for e in (selector or {}).get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key"), ",".join(e.get("values") or [])
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])
    return ",".join(parts)


def _matches(labels: dict, selector: dict) -> bool:
    labels = labels or {}
    if any(labels.get(k) != v for k, v in ((selector or {}).get("matchLabels") or {}).items()):
        return False
    for e in (selector or {}).get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values) or \
                (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


class Workload:
    """One Deployment or StatefulSet, read through typed clients (k8s.Clients)."""

    def __init__(self, clients, kind: str, namespace: str, name: str):
        self.c, self.kind, self.namespace, self.name = clients, _kind(kind), namespace, name
        self.obj = None

    # ------------------------------------------------------------------ reads
    def what(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def read(self) -> dict | None:
        try:
            if self.kind == "Deployment":
                raw = self.c.apps.read_namespaced_deployment(self.name, self.namespace)
            else:
                raw = self.c.apps.read_namespaced_stateful_set(self.name, self.namespace)
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                self.obj = None
                return None
            raise WorkloadError(api_error(exc, f"cannot read {self.what()}")) from None
        self.obj = to_dict(raw)
        return self.obj

    def require(self) -> dict:
        if self.read() is None:
            raise WorkloadError(f"{self.what()} not found; check the alert's target (namespace and name)")
        return self.obj

    def _list(self, call, what, **kw):
        try:
            return to_dict(call(self.namespace, **kw)).get("items") or []
        except ApiException as exc:
            raise WorkloadError(api_error(exc, f"cannot list {what} of {self.what()}")) from None

    def pods(self) -> list:
        sel = selector_string(self.obj["spec"].get("selector"))
        return self._list(self.c.core.list_namespaced_pod, "pods", label_selector=sel)

    def revisions(self, now: float) -> list:
        """Revisions newest first: {revision, name, created, age_s, images, containers,
        template_hash, replicas, ready_replicas, current, template}."""
        sel = selector_string(self.obj["spec"].get("selector"))
        uid = self.obj["metadata"]["uid"]
        out = []
        if self.kind == "Deployment":
            current = int((self.obj["metadata"].get("annotations") or {}).get(REVISION, 0) or 0)
            for rs in self._list(self.c.apps.list_namespaced_replica_set, "ReplicaSets", label_selector=sel):
                if not any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or []):
                    continue
                rev = int((rs["metadata"].get("annotations") or {}).get(REVISION, 0) or 0)
                tpl = rs["spec"].get("template") or {}
                out.append(self._revision(rev, rs, tpl, now, rev == current,
                                          (rs["metadata"].get("labels") or {}).get("pod-template-hash"),
                                          rs["spec"].get("replicas"), (rs.get("status") or {}).get("readyReplicas")))
        else:
            update = (self.obj.get("status") or {}).get("updateRevision")
            for cr in self._list(self.c.apps.list_namespaced_controller_revision, "ControllerRevisions",
                                 label_selector=sel):
                if not any(r.get("uid") == uid for r in cr["metadata"].get("ownerReferences") or []):
                    continue
                tpl = ((cr.get("data") or {}).get("spec") or {}).get("template") or {}
                out.append(self._revision(int(cr.get("revision") or 0), cr, tpl, now,
                                          cr["metadata"]["name"] == update, cr["metadata"]["name"], None, None))
        return sorted(out, key=lambda r: r["revision"], reverse=True)

    @staticmethod
    def _revision(rev, obj, tpl, now, current, tpl_hash, replicas, ready):
        containers = (tpl.get("spec") or {}).get("containers") or []
        return {"revision": rev, "name": obj["metadata"]["name"], "created": obj["metadata"].get("creationTimestamp"),
                "created_epoch": _ts(obj["metadata"].get("creationTimestamp")),
                "age_s": _age(obj["metadata"].get("creationTimestamp"), now),
                "images": [c.get("image") for c in containers if c.get("image")],
                "containers": [{"name": c.get("name"), "image": c.get("image")} for c in containers],
                "template_hash": tpl_hash, "replicas": replicas, "ready_replicas": int(ready or 0), "current": current,
                "template_annotations": sorted(((tpl.get("metadata") or {}).get("annotations") or {}))}

    # --------------------------------------------------------------- summaries
    def spec_summary(self) -> dict:
        spec, st = self.obj["spec"], self.obj.get("status") or {}
        desired = spec.get("replicas", 1)
        out = {"kind": self.kind, "namespace": self.namespace, "name": self.name, "exists": True,
               "uid": self.obj["metadata"]["uid"], "generation": self.obj["metadata"].get("generation"),
               "observed_generation": st.get("observedGeneration"), "paused": bool(spec.get("paused")),
               "selector": selector_string(spec.get("selector")),
               "labels": self.obj["metadata"].get("labels") or {},
               "replicas": {"desired": desired, "current": st.get("replicas", 0), "ready": st.get("readyReplicas", 0),
                            "available": st.get("availableReplicas", 0), "updated": st.get("updatedReplicas", 0),
                            "unavailable": st.get("unavailableReplicas", 0)},
               "conditions": [{k: c.get(k) for k in ("type", "status", "reason", "message")}
                              for c in st.get("conditions") or []],
               "current_revision": int((self.obj["metadata"].get("annotations") or {}).get(REVISION, 0) or 0) or None,
               "rollout_complete": rollout_complete(self.kind, self.obj),
               "containers": [container_summary(c) for c in spec["template"]["spec"].get("containers") or []]}
        return out


def container_summary(c: dict) -> dict:
    env_refs, env_from = [], []
    for e in c.get("env") or []:
        ref = (e.get("valueFrom") or {})
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if ref.get(key):
                env_refs.append({"kind": kind, "name": ref[key].get("name"), "key": ref[key].get("key"),
                                 "optional": bool(ref[key].get("optional")), "env": e.get("name")})
    for e in c.get("envFrom") or []:
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if e.get(key):
                env_from.append({"kind": kind, "name": e[key].get("name"), "optional": bool(e[key].get("optional"))})
    return {"name": c.get("name"), "image": c.get("image"), "resources": c.get("resources") or {},
            "env_names": [e.get("name") for e in c.get("env") or []], "env_refs": env_refs, "env_from": env_from,
            "volume_mounts": [m.get("name") for m in c.get("volumeMounts") or []]}


def rollout_complete(kind: str, obj: dict) -> bool:
    """kubectl rollout status, as a predicate."""
    spec, st, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    want = spec.get("replicas", 1)
    if (st.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False
    if kind == "Deployment":
        return (st.get("updatedReplicas", 0) == want and st.get("replicas", 0) == want
                and st.get("availableReplicas", 0) == want)
    return (st.get("readyReplicas", 0) == want and st.get("updatedReplicas", want) == want
            and (not st.get("updateRevision") or st.get("currentRevision") == st.get("updateRevision")))


def pod_summary(p: dict, now: float, revision_of: dict) -> dict:
    st = p.get("status") or {}
    meta = p["metadata"]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
    containers, restarts = [], 0
    for cs in st.get("containerStatuses") or []:
        state, last = cs.get("state") or {}, (cs.get("lastState") or {}).get("terminated") or {}
        restarts += int(cs.get("restartCount") or 0)
        containers.append({
            "name": cs.get("name"), "ready": bool(cs.get("ready")), "restarts": int(cs.get("restartCount") or 0),
            "state": next(iter(state), None),
            "waiting_reason": (state.get("waiting") or {}).get("reason"),
            "waiting_message": str((state.get("waiting") or {}).get("message") or "")[:300] or None,
            "terminated_reason": (state.get("terminated") or {}).get("reason"),
            "last_terminated_reason": last.get("reason"), "last_exit_code": last.get("exitCode"),
            "last_finished_at": last.get("finishedAt")})
    labels = meta.get("labels") or {}
    tpl_hash = labels.get("pod-template-hash") or labels.get("controller-revision-hash")
    deleting = bool(meta.get("deletionTimestamp"))
    waiting_bad = any(c["waiting_reason"] in BAD_WAITING for c in containers)
    problem = not deleting and (not ready or waiting_bad or st.get("phase") in ("Pending", "Failed", "Unknown"))
    return {"name": meta["name"], "phase": st.get("phase"), "ready": ready, "node": (p.get("spec") or {}).get("nodeName"),
            "node_ready": None, "restarts": restarts, "created": meta.get("creationTimestamp"),
            "age_s": _age(meta.get("creationTimestamp"), now), "template_hash": tpl_hash,
            "revision": revision_of.get(tpl_hash), "deleting": deleting, "problem": problem,
            "containers": containers}


# ------------------------------------------------------------------- evidence
class Evidence:
    """What workload_info returns: the workload's spec, revisions, pods, events, config,
    volumes, dependencies and (optionally) classified logs."""

    def __init__(self, clients, kind, namespace, name, now=None):
        self.w = Workload(clients, kind, namespace, name)
        self.c = clients
        self.now = time.time() if now is None else now
        self._cache = {}

    def collect(self, logs="none", log_lines=100, log_pods=2, dependencies=(), dependency_keys=None,
                read_nodes=True, events=True, details=True) -> dict:
        """The evidence; ``details=False`` reads only the workload, its revisions and pods
        (what polling needs: 3 requests)."""
        if self.w.read() is None:
            return {"kind": self.w.kind, "namespace": self.w.namespace, "name": self.w.name, "exists": False}
        ev = self.w.spec_summary()
        revisions = self.w.revisions(self.now)
        ev["revisions"] = [{k: v for k, v in r.items() if k != "template"} for r in revisions]
        revision_of = {r["template_hash"]: r["revision"] for r in revisions if r.get("template_hash")}
        ev["pods"] = [pod_summary(p, self.now, revision_of) for p in self.w.pods()]
        if not details:
            ev.update(config_refs=[], volumes=[], events=[], dependencies=[], unresolved_hosts=[], logs=[],
                      log_classes={})
            ev["summary"] = summarize(ev)
            return ev
        if read_nodes:
            self._node_readiness(ev["pods"])
        tpl_spec = self.w.obj["spec"]["template"]["spec"]
        ev["config_refs"] = self._config_refs(tpl_spec)
        ev["volumes"] = self._volumes(tpl_spec)
        ev["events"] = self._events(ev) if events else []
        deps, unresolved = self._dependencies(ev["config_refs"], tpl_spec, dependencies, dependency_keys)
        ev["dependencies"], ev["unresolved_hosts"] = deps, unresolved
        ev["logs"] = self._logs(ev["pods"], logs, log_lines, log_pods) if logs != "none" else []
        ev["log_classes"] = merge_counts(*[merge_counts(x["current"].get("counts"), x["previous"].get("counts"))
                                           for x in ev["logs"]])
        ev["summary"] = summarize(ev)
        return ev

    # --------------------------------------------------------------- parts
    def _node_readiness(self, pods):
        nodes = sorted({p["node"] for p in pods if p["problem"] and p["node"]})[:5]
        state = {}
        for name in nodes:
            try:
                node = to_dict(self.c.core.read_node(name))
            except ApiException as exc:
                state[name] = None if getattr(exc, "status", None) != 404 else False
                continue
            ready = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {})
            state[name] = ready.get("status") == "True"
        for p in pods:
            if p["node"] in state:
                p["node_ready"] = state[p["node"]]

    def _read_named(self, kind, name):
        """The object, or None when it does not exist (errors other than 404 raise);
        each object is read once per collection."""
        if (kind, name) not in self._cache:
            self._cache[(kind, name)] = self._read_uncached(kind, name)
        return self._cache[(kind, name)]

    def _read_uncached(self, kind, name):
        ns = self.w.namespace
        call = {"ConfigMap": self.c.core.read_namespaced_config_map, "Secret": self.c.core.read_namespaced_secret,
                "PersistentVolumeClaim": self.c.core.read_namespaced_persistent_volume_claim,
                "Service": self.c.core.read_namespaced_service}[kind]
        try:
            return to_dict(call(name, ns))
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise WorkloadError(api_error(exc, f"cannot read {kind} {ns}/{name} (referenced by {self.w.what()})")) \
                from None

    def _config_refs(self, tpl_spec) -> list:
        refs = {}

        def add(kind, name, via, key=None, optional=False):
            r = refs.setdefault((kind, name), {"kind": kind, "name": name, "via": [], "keys": [], "optional": True})
            if via not in r["via"]:
                r["via"].append(via)
            if key and key not in r["keys"]:
                r["keys"].append(key)
            r["optional"] = r["optional"] and bool(optional)

        for c in (tpl_spec.get("initContainers") or []) + (tpl_spec.get("containers") or []):
            s = container_summary(c)
            for e in s["env_refs"]:
                add(e["kind"], e["name"], "env", e["key"], e["optional"])
            for e in s["env_from"]:
                add(e["kind"], e["name"], "envFrom", None, e["optional"])
        for v in tpl_spec.get("volumes") or []:
            if v.get("configMap"):
                add("ConfigMap", v["configMap"].get("name"), "volume", None, v["configMap"].get("optional"))
                for item in v["configMap"].get("items") or []:
                    add("ConfigMap", v["configMap"].get("name"), "volume", item.get("key"), v["configMap"].get("optional"))
            if v.get("secret"):
                add("Secret", v["secret"].get("secretName"), "volume", None, v["secret"].get("optional"))
                for item in v["secret"].get("items") or []:
                    add("Secret", v["secret"].get("secretName"), "volume", item.get("key"), v["secret"].get("optional"))
        out = []
        for (kind, name), r in sorted(refs.items()):
            try:
                obj = self._read_named(kind, name)
            except WorkloadError as exc:
                if kind != "Secret" or "forbidden" not in str(exc):
                    raise
                # an identity without "get secrets" still gets the rest of the evidence
                r.update(exists=None, key_names=[], missing_keys=[], error=str(exc))
                out.append(r)
                continue
            # key names only: a Secret's values never leave this function
            keys = set(((obj or {}).get("data") or {})) | set(((obj or {}).get("binaryData") or {})) | \
                set(((obj or {}).get("stringData") or {}))
            r.update(exists=obj is not None, key_names=sorted(keys),
                     missing_keys=[k for k in r["keys"] if obj is not None and k not in keys])
            out.append(r)
        return out

    def config_values(self, refs) -> dict:
        """Non-secret values of the ConfigMaps the pods load (for dependency hosts)."""
        values = {}
        for r in refs:
            if r["kind"] == "ConfigMap" and r["exists"]:
                obj = self._read_named("ConfigMap", r["name"]) or {}
                values.update(obj.get("data") or {})
        return values

    def _volumes(self, tpl_spec) -> list:
        out = []
        for v in tpl_spec.get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                out.append(self._claim(v.get("name"), claim))
        if self.w.kind == "StatefulSet":
            for t in self.w.obj["spec"].get("volumeClaimTemplates") or []:
                # claims are <template>-<set>-<ordinal>; the first one tells the story
                out.append(self._claim(t["metadata"]["name"], f"{t['metadata']['name']}-{self.w.name}-0"))
        return out

    def _claim(self, volume, claim):
        pvc = self._read_named("PersistentVolumeClaim", claim)
        item = {"name": volume, "claim": claim, "exists": pvc is not None,
                "phase": ((pvc or {}).get("status") or {}).get("phase"),
                "storage_class": ((pvc or {}).get("spec") or {}).get("storageClassName"), "storage_class_exists": None}
        if item["storage_class"] and item["phase"] != "Bound":
            from kubernetes.client import StorageV1Api  # noqa: PLC0415 - guarded by k8s.clients()
            try:
                StorageV1Api(self.c.api_client).read_storage_class(item["storage_class"])
                item["storage_class_exists"] = True
            except ApiException as exc:
                item["storage_class_exists"] = False if getattr(exc, "status", None) == 404 else None
        return item

    def _events(self, ev) -> list:
        names = {("Deployment", self.w.name), ("StatefulSet", self.w.name)}
        names |= {("ReplicaSet", r["name"]) for r in ev["revisions"]}
        names |= {("Pod", p["name"]) for p in ev["pods"]}
        names |= {("PersistentVolumeClaim", v["claim"]) for v in ev["volumes"]}
        items = self.w._list(self.c.core.list_namespaced_event, "Warning events", field_selector="type=Warning",
                             limit=500)
        out = []
        for e in items:
            inv = e.get("involvedObject") or {}
            if (inv.get("kind"), inv.get("name")) not in names:
                continue
            out.append({"kind": inv.get("kind"), "name": inv.get("name"), "type": e.get("type"),
                        "reason": e.get("reason"), "message": str(e.get("message") or "")[:300],
                        "count": e.get("count") or 1,
                        "last_seen": e.get("lastTimestamp") or e.get("eventTime") or
                        (e.get("metadata") or {}).get("creationTimestamp")})
        out.sort(key=lambda e: str(e["last_seen"] or ""), reverse=True)
        return out[:MAX_EVENTS]

    def _dependencies(self, refs, tpl_spec, extra, keys_regex):
        rx = re.compile(keys_regex or DEFAULT_DEPENDENCY_KEYS)
        env = {}
        if any(r["kind"] == "ConfigMap" and r["exists"] for r in refs):
            env.update({k: v for k, v in self.config_values(refs).items() if rx.search(k)})
        for c in tpl_spec.get("containers") or []:
            env.update({e["name"]: e["value"] for e in c.get("env") or [] if "value" in e and rx.search(e["name"])})
        wanted, unresolved = {}, []
        for key, value in sorted(env.items()):
            svc = service_host(value, self.w.namespace)
            if svc:
                wanted.setdefault(svc, key)
            elif value:
                unresolved.append({"key": key, "value": str(value)[:120]})
        for name in extra or []:
            wanted.setdefault(name, "parameter")
        out = []
        for svc, source in sorted(wanted.items()):
            if svc == self.w.name:
                continue
            item = self._dependency(svc, source)
            if item["exists"] or source == "parameter":
                out.append(item)
            else:
                unresolved.append({"key": source, "value": svc})
        return out, unresolved

    def _dependency(self, svc, source) -> dict:
        obj = self._read_named("Service", svc)
        item = {"service": svc, "source": source, "exists": obj is not None, "ready_endpoints": 0, "endpoints": 0,
                "workload": None, "pods_ready": 0, "pods_total": 0}
        if obj is None:
            return item
        from kubernetes.client import DiscoveryV1Api  # noqa: PLC0415 - guarded by k8s.clients()
        try:
            slices = to_dict(DiscoveryV1Api(self.c.api_client).list_namespaced_endpoint_slice(
                self.w.namespace, label_selector=f"kubernetes.io/service-name={svc}")).get("items") or []
        except ApiException as exc:
            raise WorkloadError(api_error(exc, f"cannot list the EndpointSlices of Service {self.w.namespace}/{svc}")) \
                from None
        for s in slices:
            for e in s.get("endpoints") or []:
                item["endpoints"] += 1
                if (e.get("conditions") or {}).get("ready", True):
                    item["ready_endpoints"] += 1
        sel = (obj.get("spec") or {}).get("selector") or {}
        if sel:
            pods = self.w._list(self.c.core.list_namespaced_pod, f"pods of Service {svc}",
                                label_selector=",".join(f"{k}={v}" for k, v in sorted(sel.items())))
            item["pods_total"] = len(pods)
            item["pods_ready"] = sum(1 for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                                            for c in (p.get("status") or {}).get("conditions") or []))
            item["workload"] = next((owner_of(p) for p in pods if owner_of(p)), None)
        return item

    def _logs(self, pods, which, lines, max_pods) -> list:
        if which == "problem":
            chosen = sorted([p for p in pods if p["problem"]], key=lambda p: -p["restarts"])
        else:  # newest: pods of the newest revision present
            chosen = sorted([p for p in pods if not p["deleting"]], key=lambda p: str(p["created"] or ""), reverse=True)
        out = []
        for p in chosen[:max_pods]:
            cont = max(p["containers"], key=lambda c: c["restarts"], default=None) if p["containers"] else None
            name = (cont or {}).get("name") or (self.w.obj["spec"]["template"]["spec"]["containers"][0]["name"])
            entry = {"pod": p["name"], "container": name,
                     "current": self._tail(p["name"], name, lines, previous=False),
                     "previous": self._tail(p["name"], name, lines, previous=True) if p["restarts"] else
                     {"skipped": "no previous instance (0 restarts)"}}
            out.append(entry)
        return out

    def _tail(self, pod, container, lines, previous):
        try:
            text = self.c.core.read_namespaced_pod_log(pod, self.w.namespace, container=container, tail_lines=lines,
                                                       previous=previous, _preload_content=True)
        except ApiException as exc:
            return {"error": _log_error(exc)}
        result = classify_lines(text or "")
        return result


def _log_error(exc) -> str:
    body = str(getattr(exc, "body", "") or "")
    m = re.search(r'"message"\s*:\s*"([^"]+)"', body)
    return f"{getattr(exc, 'status', '?')} {m.group(1) if m else getattr(exc, 'reason', '')}"[:200]


def owner_of(pod: dict) -> dict | None:
    """{kind, name} of the Deployment/StatefulSet/DaemonSet that owns a pod, without an API
    call: a ReplicaSet named <deployment>-<pod-template-hash> belongs to <deployment>."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if not ref.get("controller"):
            continue
        if ref.get("kind") == "ReplicaSet":
            h = ((pod.get("metadata") or {}).get("labels") or {}).get("pod-template-hash")
            name = ref["name"][: -len(h) - 1] if h and ref["name"].endswith("-" + h) else ref["name"]
            return {"kind": "Deployment" if h else "ReplicaSet", "name": name}
        return {"kind": ref.get("kind"), "name": ref.get("name")}
    return None


_HOST = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^@/]*@)?([a-z0-9.-]+)(?::\d+)?(?:/.*)?$", re.IGNORECASE)


def service_host(value, namespace) -> str | None:
    """The in-namespace Service a config value points at: ``postgres``,
    ``postgres:5432``, ``http://reflex-layer:8080/x``, ``redis.<namespace>.svc``,
    ``redis.<namespace>.svc.cluster.local``. External names (with dots otherwise) -> None."""
    m = _HOST.match(str(value or "").strip())
    if not m:
        return None
    host = m.group(1).lower().rstrip(".")
    labels = host.split(".")
    if len(labels) == 1:
        return host if re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", host) else None
    if len(labels) >= 3 and labels[2] == "svc" and labels[1] == namespace:
        return labels[0]
    return None


def summarize(ev: dict) -> dict:
    pods = [p for p in ev.get("pods") or [] if not p["deleting"]]
    waiting, last = {}, {}
    for p in pods:
        for c in p["containers"]:
            if c["waiting_reason"]:
                waiting[c["waiting_reason"]] = waiting.get(c["waiting_reason"], 0) + 1
            if c["last_terminated_reason"]:
                last[c["last_terminated_reason"]] = last.get(c["last_terminated_reason"], 0) + 1
    problem = [p for p in pods if p["problem"]]
    return {"pods": len(pods), "ready": sum(1 for p in pods if p["ready"]), "problem": len(problem),
            "problem_pods": [p["name"] for p in problem][:10],
            "restarts_total": sum(p["restarts"] for p in pods),
            "max_restarts": max([p["restarts"] for p in pods], default=0),
            "waiting_reasons": waiting, "last_terminated_reasons": last,
            "not_ready_nodes": sorted({p["node"] for p in problem if p["node_ready"] is False}),
            "dependencies_down": [d["service"] for d in ev.get("dependencies") or []
                                  if not d["exists"] or d["ready_endpoints"] == 0],
            "missing_config": [f"{r['kind']}/{r['name']}" for r in ev.get("config_refs") or []
                               if (r["exists"] is False and not r["optional"]) or r.get("missing_keys")],
            "unbound_claims": [v["claim"] for v in ev.get("volumes") or [] if v["phase"] != "Bound"],
            "text": (f"{ev['kind']} {ev['namespace']}/{ev['name']}: {sum(1 for p in pods if p['ready'])}/{len(pods)} "
                     f"pods Ready, {len(problem)} failing, revision {ev.get('current_revision') or '-'}"
                     + (f", waiting {', '.join(f'{k} x{v}' for k, v in waiting.items())}" if waiting else "")
                     + (f", last terminated {', '.join(f'{k} x{v}' for k, v in last.items())}" if last else ""))}


def healthy(ev: dict) -> tuple:
    """(bool, reason): the rollout is complete and every (non-terminating) pod is Ready."""
    if not ev.get("exists", True):
        return False, "the workload does not exist"
    if not ev.get("rollout_complete"):
        r = ev["replicas"]
        return False, (f"rollout not complete: {r['updated']} updated, {r['available']} available of {r['desired']}")
    pods = [p for p in ev.get("pods") or [] if not p["deleting"]]
    bad = [p["name"] for p in pods if p["problem"]]
    if bad:
        return False, f"{len(bad)} pod(s) not Ready: {', '.join(bad[:3])}"
    return True, f"{len(pods)} pod(s) Ready, rollout complete"


def wait_healthy(collect, timeout, stable_s, interval, sleep=time.sleep, clock=time.monotonic) -> tuple:
    """Poll ``collect()`` until healthy, then until the restart counts stay the same for
    ``stable_s``. Returns (evidence, {healthy, stable, elapsed_s, reason, restarts})."""
    t0 = clock()
    ev = collect()
    ok, reason = healthy(ev)
    while not ok and clock() - t0 < timeout:
        sleep(interval)
        ev = collect()
        ok, reason = healthy(ev)
    if not ok:
        return ev, {"healthy": False, "stable": False, "elapsed_s": round(clock() - t0, 1), "reason": reason}
    base = {p["name"]: p["restarts"] for p in ev["pods"] if not p["deleting"]}
    deadline = clock() + stable_s
    while clock() < deadline:
        sleep(min(interval, max(0.0, deadline - clock())))
        ev = collect()
        ok, reason = healthy(ev)
        now = {p["name"]: p["restarts"] for p in ev["pods"] if not p["deleting"]}
        rising = [n for n, r in now.items() if r > base.get(n, r)]
        if not ok or rising:
            why = reason if not ok else f"restarts still rising on {', '.join(rising[:3])}"
            return ev, {"healthy": ok, "stable": False, "elapsed_s": round(clock() - t0, 1), "reason": why}
    return ev, {"healthy": True, "stable": True, "elapsed_s": round(clock() - t0, 1),
                "reason": f"{reason}; restarts unchanged for {stable_s:g} s", "restarts": base}


# -------------------------------------------------------------------- actions
ACTIONS = ("rollout_restart", "rollout_undo", "set_resources", "set_image", "scale", "delete_pods")


class Actions:
    """The mutations of workload_action. Each ``plan_*`` returns (changed, patch, before,
    after, msg) without writing; ``apply`` writes the patch."""

    def __init__(self, workload: Workload, now=None):
        self.w = workload
        self.now = now

    def _template(self):
        return self.w.obj["spec"]["template"]

    def _container(self, name):
        containers = self._template()["spec"]["containers"]
        if name is None:
            if len(containers) != 1:
                raise WorkloadError(f"{self.w.what()} has {len(containers)} containers: name one with container=")
            return containers[0]
        for c in containers:
            if c["name"] == name:
                return c
        raise WorkloadError(f"{self.w.what()} has no container {name!r} "
                            f"(it has {', '.join(c['name'] for c in containers)})")

    def rollout_restart(self, restarted_at=None):
        ann = (self._template().get("metadata") or {}).get("annotations") or {}
        stamp = restarted_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if restarted_at and ann.get(RESTARTED_AT) == restarted_at:
            return False, None, {RESTARTED_AT: ann.get(RESTARTED_AT)}, {RESTARTED_AT: stamp}, \
                f"{self.w.what()} was already restarted at {stamp}"
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        return True, patch, {RESTARTED_AT: ann.get(RESTARTED_AT)}, {RESTARTED_AT: stamp}, \
            f"restarted {self.w.what()} (pod template stamped {RESTARTED_AT}={stamp})"

    def set_resources(self, container, limits, requests):
        c = self._container(container)
        res = copy.deepcopy(c.get("resources") or {})
        new = copy.deepcopy(res)
        for part, values in (("limits", limits), ("requests", requests)):
            for k, v in (values or {}).items():
                old = (res.get(part) or {}).get(k)
                # the API server canonicalises quantities (1000m is stored as 1): compare values
                if old is None or not _same_quantity(old, v):
                    new.setdefault(part, {})[k] = str(v)
        if new == res:
            return False, None, res, new, f"{self.w.what()} container {c['name']} already has these resources"
        patch = {"spec": {"template": {"spec": {"containers": [{"name": c["name"], "resources": new}]}}}}
        return True, patch, res, new, f"set resources of {self.w.what()} container {c['name']}: {_short(res)} -> {_short(new)}"

    def set_image(self, container, image):
        c = self._container(container)
        if c.get("image") == image:
            return False, None, {"image": image}, {"image": image}, \
                f"{self.w.what()} container {c['name']} already runs {image}"
        patch = {"spec": {"template": {"spec": {"containers": [{"name": c["name"], "image": image}]}}}}
        return True, patch, {"image": c.get("image")}, {"image": image}, \
            f"set image of {self.w.what()} container {c['name']}: {c.get('image')} -> {image}"

    def scale(self, replicas):
        cur = self.w.obj["spec"].get("replicas", 1)
        if cur == replicas:
            return False, None, {"replicas": cur}, {"replicas": replicas}, f"{self.w.what()} already has {cur} replicas"
        return True, {"spec": {"replicas": replicas}}, {"replicas": cur}, {"replicas": replicas}, \
            f"scaled {self.w.what()} from {cur} to {replicas} replicas"

    def rollout_undo(self, revisions, to_revision=None, from_revision=None):
        """kubectl rollout undo: the pod template of the revision (previous by default)
        replaces the Deployment's, and its annotations are copied (rollback.go)."""
        if self.w.kind != "Deployment":
            raise WorkloadError(f"rollout_undo of {self.w.what()}: only Deployments keep revisions to roll back to; "
                                "restore the StatefulSet's template by hand")
        if self.w.obj["spec"].get("paused"):
            raise WorkloadError(f"{self.w.what()} is paused: resume it before rolling back")
        current = int((self.w.obj["metadata"].get("annotations") or {}).get(REVISION, 0) or 0)
        if from_revision is not None and current != int(from_revision):
            return False, None, {"revision": current}, {"revision": current}, \
                f"{self.w.what()} is at revision {current}, not {from_revision}: already rolled back or rolled on; " \
                "nothing undone"
        older = [r for r in revisions if r["revision"] < current]
        target = next((r for r in revisions if r["revision"] == int(to_revision)), None) if to_revision else \
            (older[0] if older else None)
        if target is None:
            what = f"revision {to_revision}" if to_revision else "a previous revision"
            raise WorkloadError(f"rollout_undo of {self.w.what()}: {what} not found (revisions: "
                                f"{', '.join(str(r['revision']) for r in revisions) or 'none'}); check revisionHistoryLimit")
        tpl = copy.deepcopy(target["template"])
        (tpl.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
        if _without_hash(self._template()) == tpl:
            return False, None, {"revision": current}, {"revision": current}, \
                f"{self.w.what()} already runs the template of revision {target['revision']}"
        dep_ann = self.w.obj["metadata"].get("annotations") or {}
        ann = {k: v for k, v in dep_ann.items() if k in UNDO_SKIP_ANNOTATIONS}
        ann.update({k: v for k, v in (target.get("annotations") or {}).items() if k not in UNDO_SKIP_ANNOTATIONS})
        patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": self.w.obj["metadata"]["resourceVersion"]},
                 {"op": "replace", "path": "/spec/template", "value": tpl},
                 {"op": "replace", "path": "/metadata/annotations", "value": ann}]
        return True, patch, {"revision": current, "images": [c.get("image") for c in self._template()["spec"]["containers"]]}, \
            {"revision": target["revision"], "images": target["images"]}, \
            f"rolled {self.w.what()} back from revision {current} to the template of revision {target['revision']}"

    def apply(self, patch):
        w = self.w
        try:
            if w.kind == "Deployment":
                raw = w.c.apps.patch_namespaced_deployment(w.name, w.namespace, patch)
            else:
                raw = w.c.apps.patch_namespaced_stateful_set(w.name, w.namespace, patch)
        except ApiException as exc:
            if getattr(exc, "status", None) == 422 and isinstance(patch, list):
                raise WorkloadError(f"{w.what()} changed while rolling back (resourceVersion test failed); "
                                    "read it again and retry") from None
            raise WorkloadError(api_error(exc, f"cannot patch {w.what()}")) from None
        w.obj = to_dict(raw)
        return w.obj


def revisions_with_templates(workload: Workload) -> list:
    """Revisions (newest first) with their pod templates and annotations, for rollout_undo."""
    sel = selector_string(workload.obj["spec"].get("selector"))
    uid = workload.obj["metadata"]["uid"]
    out = []
    for rs in workload._list(workload.c.apps.list_namespaced_replica_set, "ReplicaSets", label_selector=sel):
        if not any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or []):
            continue
        ann = rs["metadata"].get("annotations") or {}
        tpl = rs["spec"].get("template") or {}
        out.append({"revision": int(ann.get(REVISION, 0) or 0), "name": rs["metadata"]["name"], "template": tpl,
                    "annotations": ann, "images": [c.get("image") for c in (tpl.get("spec") or {}).get("containers") or []]})
    return sorted(out, key=lambda r: r["revision"], reverse=True)


def _same_quantity(a, b) -> bool:
    try:
        return quantity(a) == quantity(b)
    except ValueError:
        return str(a) == str(b)


def _without_hash(tpl):
    t = copy.deepcopy(tpl)
    (t.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
    return t


def _short(res):
    return "; ".join(f"{part} " + ",".join(f"{k}={v}" for k, v in sorted(vals.items()))
                     for part, vals in sorted((res or {}).items()) if vals) or "none"
