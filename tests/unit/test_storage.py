"""What the API does with a claim's StorageClass, quotas and node affinity
(plugins/module_utils/storage.py), as pure functions over API objects."""
from __future__ import annotations

from ansible_collections.octollm.alert_response.plugins.module_utils import storage as st


def pvc(cls=..., ann=None, size="1Gi", modes=("ReadWriteOnce",), name="data", ns="shop"):
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if cls is not ...:
        spec["storageClassName"] = cls
    return {"metadata": {"name": name, "namespace": ns, "annotations": ann or {}}, "spec": spec}


def sc(name, default=False, created="2026-01-01T00:00:00Z", beta=False):
    key = st.DEFAULT_CLASS[1] if beta else st.DEFAULT_CLASS[0]
    return {"metadata": {"name": name, "creationTimestamp": created,
                         "annotations": {key: "true"} if default else {}}}


def test_claim_class_unset_none_named():
    assert st.claim_class(pvc()) == ("unset", None)
    assert st.claim_class(pvc("")) == ("none", "")
    assert st.claim_class(pvc("fast")) == ("named", "fast")
    # the beta annotation wins over the field, as the API reads it
    assert st.claim_class(pvc(ann={st.BETA_CLASS: "old"})) == ("named", "old")


def test_default_class_is_the_newest_default():
    classes = [sc("a", True, "2026-01-01T00:00:00Z"), sc("b", True, "2026-02-01T00:00:00Z"), sc("c")]
    assert st.default_class(classes) == "b"
    assert st.default_class([sc("x", beta=True, default=True)]) == "x"
    assert st.default_class([sc("c")]) is None


def node(name, **labels):
    return {"metadata": {"name": name, "labels": labels}}


def test_node_selector_terms_or_expressions_and():
    sel = {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                              {"key": "disk", "operator": "Exists"}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n9"]}]}]}
    assert st.node_selector_matches(sel, node("n1", zone="a", disk="ssd"))
    assert not st.node_selector_matches(sel, node("n2", zone="a"))
    assert st.node_selector_matches(sel, node("n9"))
    assert st.node_selector_matches(None, node("n3"))
    gt = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["3"]}]}]}
    assert st.node_selector_matches(gt, node("n", gen="4")) and not st.node_selector_matches(gt, node("n", gen="x"))


def pv(cls="", size="2Gi", modes=("ReadWriteOnce",), claim=None):
    spec = {"storageClassName": cls, "capacity": {"storage": size}, "accessModes": list(modes)}
    if claim:
        spec["claimRef"] = {"name": claim[1], "namespace": claim[0]}
    return {"metadata": {"name": "pv"}, "spec": spec}


def test_pv_fits_class_modes_size_and_reservation():
    assert st.pv_fits(pv(), pvc(""))[0]
    assert not st.pv_fits(pv(cls="fast"), pvc(""))[0]
    assert not st.pv_fits(pv(size="500Mi"), pvc(""))[0]
    assert not st.pv_fits(pv(modes=("ReadOnlyMany",)), pvc(""))[0]
    assert not st.pv_fits(pv(claim=("other", "x")), pvc(""))[0]
    assert st.pv_fits(pv(claim=("shop", "data")), pvc(""))[0]


def quota(hard, used):
    return {"metadata": {"name": "q"}, "status": {"hard": hard, "used": used}}


def test_quota_status_full_and_would_exceed():
    lines = st.quota_status([quota({"requests.storage": "1Gi", "persistentvolumeclaims": "2"},
                                   {"requests.storage": "0", "persistentvolumeclaims": "2"})], "2Gi", None)
    by = {x["resource"]: x for x in lines}
    assert by["requests.storage"]["would_exceed"] and not by["requests.storage"]["full"]
    assert by["persistentvolumeclaims"]["full"]
    per_class = st.quota_status([quota({"fast.storageclass.storage.k8s.io/requests.storage": "5Gi"}, {})], "1Gi", "fast")
    assert per_class and not per_class[0]["would_exceed"]


def test_claim_refusals_are_other_objects_naming_the_claim():
    events = [
        {"kind": "StatefulSet", "reason": "FailedCreate",
         "message": 'create Claim data-db-0 for Pod db-0 failed error: persistentvolumeclaims "data-db-0" is '
                    "forbidden: exceeded quota: storage"},
        {"kind": "PersistentVolumeClaim", "reason": "FailedBinding", "message": 'claim "data-db-0"'},
        {"kind": "StatefulSet", "reason": "SuccessfulCreate", "message": 'create Pod db-1 "data-db-1"'}]
    out = st.claim_refusals(events, "data-db-0")
    assert [e["reason"] for e in out] == ["FailedCreate"]
    assert st.is_quota_message("exceeded quota: storage") and not st.is_quota_message("no storage class is set")
