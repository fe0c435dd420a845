# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What changed in a ConfigMap and who reads it (module configmap_info).

Values never leave this file: a ConfigMap is compared through per-key SHA-256 digests
(``content_digest``), which the procedure keeps in its incident record so that the next
change can be diffed key by key. ``managedFields`` say who wrote last, when, and which keys
that writer owns, which is the only change history the API keeps.

Consumers are the Deployments, StatefulSets and DaemonSets of the namespace whose pod
template reads the ConfigMap, with how they read it: ``env`` (a key as a variable),
``envFrom`` (all keys as variables), ``volume`` (files, refreshed by the kubelet) or
``subPath`` (a file mounted through subPath, never refreshed). Variables are read once
at container start, so only a restart brings ``env``/``envFrom``/``subPath`` consumers the
new values.
"""
from __future__ import annotations

import base64
import hashlib
import time

from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ApiException, api_error, to_dict
from ansible_collections.octollm.alert_response.plugins.module_utils.workloads import selector_string

NEVER_REFRESH = ("env", "envFrom", "subPath")


class ConfigMapError(Exception):
    """An error message that names the object and the next step."""


# --------------------------------------------------------------------- pure parts
def _digest(value) -> str:
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:16]


def content_digest(cm: dict) -> dict:
    """{"hash": digest of the whole content, "keys": {key: digest}} for data and binaryData."""
    keys = {}
    for k, v in sorted(((cm or {}).get("data") or {}).items()):
        keys[k] = _digest(v)
    for k, v in sorted(((cm or {}).get("binaryData") or {}).items()):
        try:
            keys[k] = _digest(base64.b64decode(v))
        except (ValueError, TypeError):
            keys[k] = _digest(v)
    whole = hashlib.sha256("\n".join(f"{k}={v}" for k, v in sorted(keys.items())).encode()).hexdigest()[:16]
    return {"hash": whole, "keys": keys}


def diff_digests(old: dict | None, new: dict) -> dict | None:
    """Added, removed and changed keys between two content_digest results (None without an old one)."""
    if not old or not isinstance(old.get("keys"), dict):
        return None
    o, n = old["keys"], new["keys"]
    return {"added": sorted(set(n) - set(o)), "removed": sorted(set(o) - set(n)),
            "changed": sorted(k for k in set(o) & set(n) if o[k] != n[k]), "same_content": old.get("hash") == new["hash"]}


def managed_fields(cm: dict) -> list:
    """managedFields as {manager, operation, time, subresource, keys}, oldest first; ``keys``
    are the data/binaryData keys that manager owns."""
    out = []
    for m in ((cm or {}).get("metadata") or {}).get("managedFields") or []:
        fields = m.get("fieldsV1") or {}
        keys = [k[2:] for part in ("f:data", "f:binaryData") for k in (fields.get(part) or {}) if k.startswith("f:")]
        out.append({"manager": m.get("manager"), "operation": m.get("operation"), "time": m.get("time"),
                    "subresource": m.get("subresource"), "keys": sorted(keys)})
    return sorted(out, key=lambda e: str(e["time"] or ""))


def last_write(entries: list) -> dict | None:
    """The newest managedFields entry that owns data (the last writer of the content)."""
    with_data = [e for e in entries if e["keys"]]
    return with_data[-1] if with_data else (entries[-1] if entries else None)


def template_reads(template: dict, name: str) -> list:
    """How a pod template reads ConfigMap ``name``: a sorted subset of env, envFrom, volume, subPath."""
    spec = (template or {}).get("spec") or {}
    ways = set()
    volumes = set()
    for v in spec.get("volumes") or []:
        if (v.get("configMap") or {}).get("name") == name:
            volumes.add(v.get("name"))
        for src in (v.get("projected") or {}).get("sources") or []:
            if (src.get("configMap") or {}).get("name") == name:
                volumes.add(v.get("name"))
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for e in c.get("env") or []:
            if ((e.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name") == name:
                ways.add("env")
        for e in c.get("envFrom") or []:
            if (e.get("configMapRef") or {}).get("name") == name:
                ways.add("envFrom")
        for m in c.get("volumeMounts") or []:
            if m.get("name") in volumes:
                ways.add("subPath" if m.get("subPath") or m.get("subPathExpr") else "volume")
    return sorted(ways)


# ------------------------------------------------------------------- evidence
class ConfigMapEvidence:
    def __init__(self, clients, namespace, name, now=None):
        self.c, self.namespace, self.name = clients, namespace, name
        self.now = time.time() if now is None else now

    def what(self):
        return f"ConfigMap {self.namespace}/{self.name}"

    def _call(self, call, what, *args, **kw):
        try:
            return to_dict(call(*args, **kw))
        except ApiException as exc:
            if getattr(exc, "status", None) == 404 and what == "read":
                return None
            raise ConfigMapError(api_error(exc, f"cannot {what} (for {self.what()})")) from None

    def collect(self, consumers=True, pods=True) -> dict:
        cm = self._call(self.c.core.read_namespaced_config_map, "read", self.name, self.namespace)
        ev = {"configmap": {"namespace": self.namespace, "name": self.name, "exists": cm is not None}}
        if cm is not None:
            entries = managed_fields(cm)
            meta = cm["metadata"]
            ev["configmap"].update(
                resource_version=meta.get("resourceVersion"), uid=meta.get("uid"), created=meta.get("creationTimestamp"),
                keys=sorted(set((cm.get("data") or {})) | set((cm.get("binaryData") or {}))),
                immutable=bool(cm.get("immutable")), content=content_digest(cm), managed_fields=entries,
                last_write=last_write(entries))
            lw = ev["configmap"]["last_write"]
            if lw:
                lw["age_s"] = _age(lw.get("time"), self.now)
        ev["consumers"] = self.consumers(pods) if consumers else []
        ev["summary"] = summarize(ev)
        return ev

    def consumers(self, pods=True) -> list:
        out = []
        lists = (("Deployment", self.c.apps.list_namespaced_deployment),
                 ("StatefulSet", self.c.apps.list_namespaced_stateful_set),
                 ("DaemonSet", self.c.apps.list_namespaced_daemon_set))
        for kind, call in lists:
            for w in (self._call(call, f"list the {kind}s of {self.namespace}", self.namespace) or {}).get("items") or []:
                ways = template_reads((w.get("spec") or {}).get("template"), self.name)
                if not ways:
                    continue
                item = {"kind": kind, "name": w["metadata"]["name"], "via": ways,
                        "refreshes": not any(x in NEVER_REFRESH for x in ways),
                        "replicas": (w.get("spec") or {}).get("replicas"),
                        "restarted_at": (((w.get("spec") or {}).get("template") or {}).get("metadata") or {})
                        .get("annotations", {}).get("kubectl.kubernetes.io/restartedAt")}
                if pods:
                    item.update(self._pod_starts(w))
                out.append(item)
        return out

    def _pod_starts(self, w) -> dict:
        sel = selector_string((w.get("spec") or {}).get("selector"))
        items = (self._call(self.c.core.list_namespaced_pod, f"list the pods of {w['metadata']['name']}",
                            self.namespace, label_selector=sel) or {}).get("items") or [] if sel else []
        starts = sorted(str((p.get("status") or {}).get("startTime") or p["metadata"].get("creationTimestamp") or "")
                        for p in items if not p["metadata"].get("deletionTimestamp"))
        return {"pods": len(starts), "oldest_pod_started": starts[0] if starts else None}


def _age(value, now):
    import datetime as dt  # noqa: PLC0415 - only for parsing
    if not value:
        return None
    try:
        return round(now - dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp(), 1)
    except ValueError:
        return None


def summarize(ev) -> dict:
    cm = ev["configmap"]
    if not cm["exists"]:
        return {"text": f"ConfigMap {cm['namespace']}/{cm['name']} does not exist (deleted?)"}
    lw = cm.get("last_write") or {}
    text = f"ConfigMap {cm['namespace']}/{cm['name']} rv {cm['resource_version']}, {len(cm['keys'])} key(s), " \
           f"content {cm['content']['hash']}; last written by {lw.get('manager') or '?'} ({lw.get('operation') or '?'}) " \
           f"at {lw.get('time') or '?'}"
    if ev["consumers"]:
        text += "; read by " + ", ".join(f"{c['kind']}/{c['name']} ({'+'.join(c['via'])})" for c in ev["consumers"][:5])
    return {"text": text}
