"""HPA helpers (plugins/module_utils/autoscalers.py): targets, the CPU target the runbook
tunes, change points, who changed the replica count, PromQL durations."""
from __future__ import annotations

import pytest

from ansible_collections.octollm.alert_response.plugins.module_utils import autoscalers as au

SPEC = {"metrics": [
    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
    {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "100"}}}]}


def test_metric_targets_and_cpu_target():
    assert au.metric_targets(SPEC) == [
        {"type": "Resource", "name": "cpu", "target_type": "Utilization", "target": 70},
        {"type": "Pods", "name": "rps", "target_type": "AverageValue", "target": "100"}]
    assert au.cpu_target(SPEC) == 70 and au.cpu_target({"metrics": SPEC["metrics"][1:]}) is None


def test_with_cpu_target_copies_and_refuses_without_cpu():
    new = au.with_cpu_target(SPEC, 80)
    assert au.cpu_target(new) == 80 and au.cpu_target(SPEC) == 70
    with pytest.raises(au.HpaError, match="no CPU utilisation target"):
        au.with_cpu_target({"metrics": SPEC["metrics"][1:]}, 80)


def test_change_points():
    assert au.change_points([[1, "2"], [2, "2"], [3, "3"], [4, "3"], [5, "2"], [6, "NaN?"]]) == \
        [[1.0, 2.0], [3.0, 3.0], [5.0, 2.0]]


def test_scale_cause():
    rescale = [{"reason": "SuccessfulRescale", "message": "New size: 4; reason: cpu above target"}]
    active = [{"type": "ScalingActive", "status": "True"}]
    inactive = [{"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "message": "no API"}]
    assert au.scale_cause(rescale, active)["by"] == "hpa"
    assert au.scale_cause([], inactive)["by"] == "outside_hpa"
    assert au.scale_cause([], active)["by"] == "unknown"
    limited = au.scale_cause(rescale, active + [{"type": "ScalingLimited", "status": "True", "reason": "TooManyReplicas"}])
    assert limited["limited"] == "TooManyReplicas"


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("1h30m", 5400), ("90s", 90), ("2d", 172800),
                                           ("500ms", 0.5), ("x", None), ("30", None), ("", None)])
def test_duration_s(text, seconds):
    assert au.duration_s(text) == seconds
