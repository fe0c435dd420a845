# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence and the one safe fix for a Pending PersistentVolumeClaim (modules pvc_info
and pvc_storage_class).

What the API really does, which the evidence is shaped around:

- The DefaultStorageClass admission plugin fills an unset ``storageClassName`` at creation
  when a default class exists, and since Kubernetes 1.28 the PV controller also assigns
  the default to unset claims that were created before a default existed (retroactive
  default StorageClass assignment). A claim with no class therefore stays Pending only
  while the cluster has no default class.
- ``spec.storageClassName`` may be set on an existing claim only when it was unset (nil);
  ``""`` ("no class, bind a pre-provisioned volume") and a named class are immutable.
- ResourceQuota admission refuses a claim over quota at creation: a quota problem shows as
  a refused create (a ``FailedCreate`` event on the StatefulSet whose volumeClaimTemplate
  it is), never as a Pending claim. The claim then does not exist at all.

Everything is read by name or per namespace except StorageClasses, PersistentVolumes and
Nodes (cluster-scoped by nature; PVs and Nodes are needed to compare node affinity).
"""
from __future__ import annotations

import re
import time

from ansible_collections.octollm.alert_response.plugins.module_utils.diagnosis import quantity
from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ApiException, api_error, read_json, to_dict

BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
DEFAULT_CLASS = ("storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class")
MAX_EVENTS = 15


class StorageError(Exception):
    """An error message that names the object and the next step."""


def _storage_api(clients):
    from kubernetes.client import StorageV1Api  # noqa: PLC0415 - guarded by k8s.clients()
    return StorageV1Api(clients.api_client)


# --------------------------------------------------------------------- pure parts
def claim_class(pvc: dict):
    """(how, name): how is ``unset`` (nil: the default may be set), ``none`` ("": no class,
    static volumes only), ``named`` (spec or the beta annotation)."""
    ann = (pvc.get("metadata") or {}).get("annotations") or {}
    if BETA_CLASS in ann:
        return ("named", ann[BETA_CLASS]) if ann[BETA_CLASS] else ("none", "")
    name = (pvc.get("spec") or {}).get("storageClassName")
    if name is None:
        return "unset", None
    return ("named", name) if name else ("none", "")


def is_default(sc: dict) -> bool:
    ann = (sc.get("metadata") or {}).get("annotations") or {}
    return any(str(ann.get(k, "")).lower() == "true" for k in DEFAULT_CLASS)


def default_class(classes: list):
    """The class the API would give an unset claim: the newest default, by name on a tie
    (k8s.io/component-helpers storage/volume GetDefaultClass)."""
    defaults = [c for c in classes if is_default(c)]
    if not defaults:
        return None
    return sorted(defaults, key=lambda c: (str(c["metadata"].get("creationTimestamp") or ""),
                                           c["metadata"]["name"]), reverse=True)[0]["metadata"]["name"]


def _requirement(expr: dict, labels: dict) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    has = key in labels
    if op == "In":
        return has and labels[key] in values
    if op == "NotIn":
        return not has or labels[key] not in values
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt") and has and values:
        try:
            a, b = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def node_selector_matches(selector: dict | None, node: dict) -> bool:
    """A NodeSelector (terms ORed, expressions ANDed) against one node."""
    terms = (selector or {}).get("nodeSelectorTerms") or []
    if not terms:
        return True
    labels = (node.get("metadata") or {}).get("labels") or {}
    fields = {"metadata.name": (node.get("metadata") or {}).get("name")}
    for t in terms:
        exprs, fexprs = t.get("matchExpressions") or [], t.get("matchFields") or []
        if not exprs and not fexprs:
            continue
        if all(_requirement(e, labels) for e in exprs) and all(_requirement(e, fields) for e in fexprs):
            return True
    return False


def pv_fits(pv: dict, pvc: dict) -> tuple:
    """(bool, why not): could the PV controller bind this Available volume to the claim,
    node affinity aside? Class, access modes, volume mode and size."""
    how, cls = claim_class(pvc)
    spec, pspec = pv.get("spec") or {}, pvc.get("spec") or {}
    pv_class = spec.get("storageClassName") or ""
    if (cls or "") != pv_class:
        return False, f"class {pv_class or '(none)'} is not the claim's {cls or '(none)'}"
    if not set(pspec.get("accessModes") or []) <= set(spec.get("accessModes") or []):
        return False, "access modes do not cover the claim's"
    if (spec.get("volumeMode") or "Filesystem") != (pspec.get("volumeMode") or "Filesystem"):
        return False, "volume mode differs"
    want = ((pspec.get("resources") or {}).get("requests") or {}).get("storage")
    have = (spec.get("capacity") or {}).get("storage")
    try:
        if want and have and quantity(have) < quantity(want):
            return False, f"capacity {have} is below the requested {want}"
    except ValueError:
        return False, "capacity cannot be compared"
    ref = spec.get("claimRef") or {}
    if ref.get("name") and (ref.get("name") != pvc["metadata"]["name"] or
                            ref.get("namespace") != pvc["metadata"].get("namespace")):
        return False, f"reserved for {ref.get('namespace')}/{ref.get('name')}"
    return True, ""


def quota_status(quotas: list, request: str | None, cls: str | None) -> list:
    """Storage lines of the namespace's ResourceQuotas: used vs hard, and whether one more
    claim of ``request`` bytes would be refused."""
    keys = ["requests.storage", "persistentvolumeclaims"]
    if cls:
        keys += [f"{cls}.storageclass.storage.k8s.io/requests.storage",
                 f"{cls}.storageclass.storage.k8s.io/persistentvolumeclaims"]
    out = []
    for q in quotas:
        st = q.get("status") or {}
        hard, used = st.get("hard") or (q.get("spec") or {}).get("hard") or {}, st.get("used") or {}
        for key in keys:
            if key not in hard:
                continue
            add = 1 if key.endswith("persistentvolumeclaims") else request
            try:
                h, u = quantity(hard[key]), quantity(used.get(key, "0"))
                a = quantity(add) if add is not None else 0.0
            except ValueError:
                continue
            out.append({"quota": q["metadata"]["name"], "resource": key, "hard": hard[key], "used": used.get(key, "0"),
                        "full": u >= h, "would_exceed": u + a > h})
    return out


_QUOTA = re.compile(r"exceeded quota|forbidden: .*quota|insufficient quota|quota.*exceed", re.IGNORECASE)


def claim_refusals(events: list, claim: str) -> list:
    """Events of other objects that report a refused create of this claim name (quota
    admission answers the StatefulSet controller, which records FailedCreate)."""
    needle = f'"{claim}"'
    return [e for e in events if e.get("kind") != "PersistentVolumeClaim" and needle in (e.get("message") or "")
            and (e.get("reason") == "FailedCreate" or is_quota_message(e.get("message")))]


def is_quota_message(message: str) -> bool:
    return bool(_QUOTA.search(message or ""))


# ------------------------------------------------------------------- evidence
class Claim:
    def __init__(self, clients, namespace, name, now=None):
        self.c, self.namespace, self.name = clients, namespace, name
        self.now = time.time() if now is None else now

    def what(self):
        return f"PersistentVolumeClaim {self.namespace}/{self.name}"

    def read(self) -> dict | None:
        try:
            return to_dict(self.c.core.read_namespaced_persistent_volume_claim(self.name, self.namespace))
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise StorageError(api_error(exc, f"cannot read {self.what()}")) from None

    def _list(self, call, what, *args, raw=False, **kw) -> list:
        """The items of a list call; ``raw`` reads the body as plain JSON (no typed objects),
        for lists that grow with the cluster."""
        try:
            return (read_json(call, *args, **kw) if raw else to_dict(call(*args, **kw))).get("items") or []
        except ApiException as exc:
            raise StorageError(api_error(exc, f"cannot list {what} (for {self.what()})")) from None

    def collect(self, read_volumes=True) -> dict:
        pvc = self.read()
        events = self._events()
        quotas = self._list(self.c.core.list_namespaced_resource_quota, "ResourceQuotas", self.namespace)
        classes = self._list(_storage_api(self.c).list_storage_class, "StorageClasses")
        ev = {"claim": {"namespace": self.namespace, "name": self.name, "exists": pvc is not None},
              "storage_classes": [_class_summary(c) for c in classes], "default_class": default_class(classes),
              "events": [e for e in events if e["kind"] == "PersistentVolumeClaim" and e["name"] == self.name],
              "refusals": claim_refusals(events, self.name)}
        request = None
        if pvc is not None:
            how, cls = claim_class(pvc)
            spec, st = pvc.get("spec") or {}, pvc.get("status") or {}
            request = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            named = next((c for c in classes if c["metadata"]["name"] == cls), None) if how == "named" else None
            ev["claim"].update(
                phase=st.get("phase"), class_how=how, class_name=cls, class_exists=None if how != "named" else bool(named),
                binding_mode=(named or {}).get("volumeBindingMode"), provisioner=(named or {}).get("provisioner"),
                request=request, access_modes=spec.get("accessModes") or [], volume_name=spec.get("volumeName"),
                created=pvc["metadata"].get("creationTimestamp"),
                age_s=_age(pvc["metadata"].get("creationTimestamp"), self.now),
                annotations={k: v for k, v in (pvc["metadata"].get("annotations") or {}).items()
                             if k.startswith(("volume.", "pv.kubernetes.io"))})
            ev["consumers"] = self._consumers()
            if read_volumes and st.get("phase") != "Bound":
                ev["volumes"] = self._volumes(pvc)
        if pvc is None and ev["refusals"]:
            # the refused create names what it asked for: "requested: requests.storage=2Gi, used: ..."
            m = re.search(r"requested: [^\n]*?requests\.storage=([0-9.]+[A-Za-z]*)", ev["refusals"][0]["message"])
            request = m.group(1) if m else None
            ev["claim"]["request"] = request
        ev["quotas"] = quota_status(quotas, request, ev["claim"].get("class_name"))
        ev["summary"] = summarize(ev)
        return ev

    def _events(self) -> list:
        items = self._list(self.c.core.list_namespaced_event, "events", self.namespace, limit=500)
        out = []
        for e in items:
            inv = e.get("involvedObject") or {}
            msg = str(e.get("message") or "")
            if not ((inv.get("kind") == "PersistentVolumeClaim" and inv.get("name") == self.name)
                    or f'"{self.name}"' in msg):
                continue
            out.append({"kind": inv.get("kind"), "name": inv.get("name"), "type": e.get("type"),
                        "reason": e.get("reason"), "message": msg[:300], "count": e.get("count") or 1,
                        "last_seen": e.get("lastTimestamp") or e.get("eventTime")
                        or (e.get("metadata") or {}).get("creationTimestamp")})
        out.sort(key=lambda e: str(e["last_seen"] or ""), reverse=True)
        return out[:MAX_EVENTS]

    def _consumers(self) -> list:
        out = []
        for p in self._list(self.c.core.list_namespaced_pod, "pods", self.namespace):
            vols = (p.get("spec") or {}).get("volumes") or []
            if not any((v.get("persistentVolumeClaim") or {}).get("claimName") == self.name for v in vols):
                continue
            st = p.get("status") or {}
            sched = next((c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
            out.append({"pod": p["metadata"]["name"], "phase": st.get("phase"),
                        "node": (p.get("spec") or {}).get("nodeName"),
                        "scheduled": sched.get("status") == "True", "reason": sched.get("reason"),
                        "message": str(sched.get("message") or "")[:300] or None,
                        "deleting": bool(p["metadata"].get("deletionTimestamp"))})
        return out

    def _volumes(self, pvc) -> dict:
        pvs = self._list(self.c.core.list_persistent_volume, "PersistentVolumes")
        nodes = None
        fitting, bound = [], None
        name = (pvc.get("spec") or {}).get("volumeName")
        for pv in pvs:
            if name and pv["metadata"]["name"] == name:
                bound = {"name": name, "phase": (pv.get("status") or {}).get("phase")}
            if (pv.get("status") or {}).get("phase") != "Available":
                continue
            ok = pv_fits(pv, pvc)[0]
            if not ok:
                continue
            affinity = ((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")
            item = {"name": pv["metadata"]["name"], "capacity": ((pv.get("spec") or {}).get("capacity") or {}).get("storage"),
                    "node_affinity": bool(affinity), "matching_nodes": None}
            if affinity:
                if nodes is None:
                    nodes = self._list(self.c.core.list_node, "nodes", raw=True)
                item["matching_nodes"] = [n["metadata"]["name"] for n in nodes if node_selector_matches(affinity, n)][:5]
            fitting.append(item)
        return {"available_fitting": fitting, "requested_volume": name,
                "requested_volume_found": bound if name else None}


def _class_summary(sc: dict) -> dict:
    return {"name": sc["metadata"]["name"], "default": is_default(sc), "provisioner": sc.get("provisioner"),
            "binding_mode": sc.get("volumeBindingMode") or "Immediate",
            "created": sc["metadata"].get("creationTimestamp")}


def _age(value, now):
    import datetime as dt  # noqa: PLC0415 - only for parsing
    if not value:
        return None
    try:
        return round(now - dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp(), 1)
    except ValueError:
        return None


def summarize(ev) -> dict:
    c = ev["claim"]
    if not c["exists"]:
        text = f"PVC {c['namespace']}/{c['name']} does not exist"
        if ev["refusals"]:
            text += f"; its creation was refused: {ev['refusals'][0]['message'][:160]}"
        return {"text": text}
    cls = {"unset": "no class set", "none": 'class "" (static volumes only)'}.get(c["class_how"]) or \
        f"class {c['class_name']}" + ("" if c["class_exists"] else " (missing)")
    text = f"PVC {c['namespace']}/{c['name']} {c['phase']}, {cls}, default class {ev['default_class'] or 'none'}"
    if ev["events"]:
        text += f"; last event {ev['events'][0]['reason']}: {ev['events'][0]['message'][:120]}"
    return {"text": text}


# ---------------------------------------------------------------------- action
def set_class(clients, namespace, name, storage_class, check_mode) -> dict:
    """Set the class of a claim whose class is unset (the only change the API allows)."""
    claim = Claim(clients, namespace, name)
    pvc = claim.read()
    if pvc is None:
        raise StorageError(f"{claim.what()} not found; check the alert's namespace and persistentvolumeclaim")
    how, current = claim_class(pvc)
    before = {"storageClassName": current if how != "unset" else None}
    after = {"storageClassName": storage_class}
    if how == "named" and current == storage_class:
        return {"changed": False, "before": before, "after": after,
                "msg": f"{claim.what()} already asks for StorageClass {storage_class}"}
    if how != "unset":
        raise StorageError(f"{claim.what()} already names class {current!r}"
                           f"{' (the empty class)' if how == 'none' else ''}; the API allows setting "
                           "storageClassName only when it is unset: recreate the claim with the right class instead")
    if (pvc.get("status") or {}).get("phase") == "Bound":
        raise StorageError(f"{claim.what()} is already Bound; nothing to set")
    if not check_mode:
        try:
            body = {"spec": {"storageClassName": storage_class}}
            clients.core.patch_namespaced_persistent_volume_claim(name, namespace, body)
        except ApiException as exc:
            raise StorageError(api_error(exc, f"cannot set the StorageClass of {claim.what()}")) from None
    return {"changed": True, "before": before, "after": after,
            "msg": f"set StorageClass of {claim.what()} to {storage_class}"}


def wait_bound(clients, namespace, name, timeout, interval, sleep=time.sleep, clock=time.monotonic) -> dict:
    """Poll until the claim is Bound and its consumers are scheduled."""
    claim = Claim(clients, namespace, name)
    t0 = clock()
    while True:
        pvc = claim.read()
        phase = ((pvc or {}).get("status") or {}).get("phase")
        consumers = claim._consumers() if phase == "Bound" else []
        waiting = [c["pod"] for c in consumers if not c["scheduled"] and not c["deleting"]]
        ok = phase == "Bound" and not waiting
        elapsed = round(clock() - t0, 1)
        if ok or elapsed + interval > timeout:
            reason = (f"Bound; {len(consumers)} consumer pod(s) scheduled" if ok else
                      f"phase {phase or 'missing'}" + (f"; pods not scheduled: {', '.join(waiting[:3])}" if waiting else ""))
            return {"bound": phase == "Bound", "ok": ok, "elapsed_s": elapsed, "phase": phase, "reason": reason,
                    "consumers": consumers}
        sleep(interval)
