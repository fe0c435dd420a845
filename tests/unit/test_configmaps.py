"""ConfigMap digests, writers and consumers (plugins/module_utils/configmaps.py)."""
from __future__ import annotations

import base64

from ansible_collections.octollm.alert_response.plugins.module_utils import configmaps as cm


def test_digests_change_with_values_and_never_carry_them():
    a = cm.content_digest({"data": {"LOG_LEVEL": "info", "DB_HOST": "postgres"}})
    b = cm.content_digest({"data": {"LOG_LEVEL": "debug", "DB_HOST": "postgres"}})
    assert a["keys"]["DB_HOST"] == b["keys"]["DB_HOST"] and a["keys"]["LOG_LEVEL"] != b["keys"]["LOG_LEVEL"]
    assert a["hash"] != b["hash"] and "postgres" not in str(a) and len(a["hash"]) == 16


def test_binary_data_is_digested_by_content():
    raw = cm.content_digest({"binaryData": {"cert": base64.b64encode(b"abc").decode()}})
    assert raw["keys"]["cert"] == cm.content_digest({"data": {"cert": "abc"}})["keys"]["cert"]


def test_diff_digests():
    old = cm.content_digest({"data": {"A": "1", "B": "2", "C": "3"}})
    new = cm.content_digest({"data": {"A": "1", "B": "x", "D": "4"}})
    assert cm.diff_digests(old, new) == {"added": ["D"], "removed": ["C"], "changed": ["B"], "same_content": False}
    assert cm.diff_digests(None, new) is None
    assert cm.diff_digests(new, new)["same_content"]


def test_managed_fields_and_last_writer():
    obj = {"metadata": {"managedFields": [
        {"manager": "kubectl-client-side-apply", "operation": "Update", "time": "2026-01-01T10:00:00Z",
         "fieldsV1": {"f:data": {".": {}, "f:A": {}, "f:B": {}}, "f:metadata": {}}},
        {"manager": "argocd-controller", "operation": "Apply", "time": "2026-01-01T11:00:00Z",
         "fieldsV1": {"f:data": {"f:B": {}}}},
        {"manager": "kube-controller-manager", "operation": "Update", "time": "2026-01-01T12:00:00Z",
         "fieldsV1": {"f:metadata": {"f:labels": {}}}},
        # a no-op apply keeps no time: it sorts first
        {"manager": "noop", "operation": "Apply", "fieldsV1": {"f:data": {"f:A": {}}}}]}}
    entries = cm.managed_fields(obj)
    assert [e["manager"] for e in entries] == [
        "noop", "kubectl-client-side-apply", "argocd-controller", "kube-controller-manager"]
    assert entries[1]["keys"] == ["A", "B"]
    # the newest writer of the content, not of the metadata
    assert cm.last_write(entries)["manager"] == "argocd-controller"
    assert cm.last_write([]) is None


def test_template_reads_every_way():
    tpl = {"spec": {
        "volumes": [{"name": "cfg", "configMap": {"name": "app"}},
                    {"name": "proj", "projected": {"sources": [{"configMap": {"name": "app"}}]}},
                    {"name": "other", "configMap": {"name": "x"}}],
        "initContainers": [{"name": "init", "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {
            "name": "app", "key": "A"}}}]}],
        "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "app"}}],
                        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"},
                                         {"name": "proj", "mountPath": "/etc/p/f", "subPath": "f"},
                                         {"name": "other", "mountPath": "/x"}]}]}}
    assert cm.template_reads(tpl, "app") == ["env", "envFrom", "subPath", "volume"]
    assert cm.template_reads(tpl, "x") == ["volume"]
    assert cm.template_reads(tpl, "nope") == []
