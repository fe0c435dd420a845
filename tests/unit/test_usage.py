"""Trend maths and node-usage helpers (plugins/module_utils/usage.py): the runbook's
"steadily increasing memory", how long a node has been above a threshold, who uses a node,
and the PromQL regex built from pod names."""
from __future__ import annotations

import re

import pytest

from ansible_collections.octollm.alert_response.plugins.module_utils import usage as us

MI = 2 ** 20


def series(values, step=10, start=1000):
    return [[start + i * step, str(v)] for i, v in enumerate(values)]


def test_steady_climb_is_a_rise():
    t = us.trend(series([100 * MI + i * 30 * MI for i in range(10)]))
    assert t["steady_rise"] and t["slope_per_min"] == pytest.approx(180 * MI)
    assert t["rise"] == 270 * MI and t["monotonic_share"] == 1.0 and t["span_s"] == 90


def test_flat_and_sawtooth_are_not_a_rise():
    assert not us.trend(series([250 * MI] * 10))["steady_rise"]
    saw = [100, 200, 300, 100, 200, 300, 100, 200, 300, 400]
    assert not us.trend(series([v * MI for v in saw]))["steady_rise"]


def test_climb_then_capped_at_the_limit_is_still_a_rise():
    # the simulator caps a leaking container at its limit: rise, then flat
    values = [128, 200, 256, 256, 256, 256, 256, 256]
    assert us.trend(series([v * MI for v in values]))["steady_rise"]


def test_small_rises_and_short_series_are_not_a_rise():
    assert not us.trend(series([1000 * MI, 1001 * MI, 1002 * MI, 1003 * MI]))["steady_rise"]  # < 64Mi
    assert not us.trend(series([100 * MI, 400 * MI]))["steady_rise"]  # 2 points
    assert not us.trend([])["steady_rise"] and us.trend([])["points"] == 0


def test_nan_samples_are_ignored():
    t = us.trend([[0, "NaN"], [10, "1"], [20, "+Inf"], [30, "2"]])
    assert t["points"] == 2 and t["first"] == 1.0 and t["last"] == 2.0


def test_duration_above_the_threshold():
    d = us.duration_above(series([0.5, 0.95, 0.96, 0.97], step=600), 0.9)
    assert d["above_now"] and d["duration_s"] == 1200 and not d["since_start"]
    d = us.duration_above(series([0.95, 0.96], step=600), 0.9)
    assert d["since_start"] and d["duration_s"] == 600
    assert not us.duration_above(series([0.95, 0.5]), 0.9)["above_now"]


def test_owner_shares_sum_per_workload():
    rows = [{"owner_kind": "Deployment", "namespace": "a", "owner_name": "api", "pod": "api-1", "usage": 3.0},
            {"owner_kind": "Deployment", "namespace": "a", "owner_name": "api", "pod": "api-2", "usage": 3.0},
            {"owner_kind": None, "namespace": "a", "owner_name": None, "pod": "lonely", "usage": 1.0}]
    out = us.owner_shares(rows, used=8.0)
    assert out[0]["name"] == "api" and out[0]["usage"] == 6.0 and out[0]["share"] == 0.75
    assert out[0]["pods_on_node"] == 2 and out[1]["name"] == "lonely"


def test_regex_alternatives_escape_dots_for_a_promql_string():
    rx = us.regex_alternatives(["api.v2-7d9f-x", "web-1"])
    assert rx == "api\\\\.v2-7d9f-x|web-1"
    # what Prometheus sees after unquoting the string: a regex matching exactly those names
    unquoted = rx.replace("\\\\", "\\")
    assert re.fullmatch(unquoted, "api.v2-7d9f-x") and not re.fullmatch(unquoted, "apiXv2-7d9f-x")
    assert us.regex_alternatives([]) == "^$"


def test_label_value_escapes_quotes():
    assert us.label_value('a"b\\c') == 'a\\"b\\\\c'


def test_oom_kills_within_the_window():
    pod = {"metadata": {"namespace": "a", "name": "api-1", "labels": {"pod-template-hash": "7d9f"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "api-7d9f", "controller": True}]},
           "spec": {"containers": [{"name": "api", "resources": {"limits": {"memory": "512Mi"}}}]},
           "status": {"containerStatuses": [{"name": "api", "restartCount": 3, "lastState": {"terminated": {
               "reason": "OOMKilled", "finishedAt": "2026-01-01T10:00:00Z"}}}]}}
    now = 1767261600.0 + 60  # 2026-01-01T10:01:00Z
    kills = us._oom_kills([pod], now, 3600)
    assert kills == [{"namespace": "a", "pod": "api-1", "container": "api", "limit": "512Mi",
                      "finished_at": "2026-01-01T10:00:00Z", "age_s": 60.0, "restarts": 3,
                      "owner_kind": "Deployment", "owner_name": "api"}]
    assert us._oom_kills([pod], now + 7200, 3600) == []
