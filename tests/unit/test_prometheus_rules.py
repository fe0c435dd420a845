"""The shipped Prometheus rules: valid, tested with promtool, and faithful to the runbook
in name, severity and duration (the expressions differ where docs/rules.md says why)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "prometheus" / "alert-response.rules.yml"
sys.path.insert(0, str(REPO / "tests" / "testbed"))

# name: (severity, for) as the runbook defines them (HPAScaledDown: the runbook names it
# and gives no definition; we derive it from the same metric).
RUNBOOK = {
    "PodCrashLoopBackOff": ("critical", "5m"), "NodeNotReady": ("critical", "5m"),
    "HighErrorRate": ("critical", "5m"), "DatabaseConnectionPoolExhausted": ("critical", "5m"),
    "HighLatency": ("critical", "10m"), "CertificateExpiringInSevenDays": ("critical", "1h"),
    "HighNodeCPUUsage": ("warning", "10m"), "HighNodeMemoryUsage": ("warning", "10m"),
    "HighRequestLatency": ("warning", "10m"), "PodOOMKilled": ("warning", "1m"),
    "PersistentVolumeClaimPending": ("warning", "5m"), "DeploymentReplicasMismatch": ("warning", "15m"),
    "LowCacheHitRate": ("warning", "15m"), "NewDeploymentDetected": ("info", None),
    "HPAScaledUp": ("info", None), "HPAScaledDown": ("info", None), "ConfigMapChanged": ("info", None),
}

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(promtool is None, reason="promtool not installed (make system-deps)")


def alerts():
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def test_every_runbook_alert_is_shipped_with_its_severity_and_duration():
    shipped = alerts()
    assert set(shipped) == set(RUNBOOK)
    for name, (severity, duration) in RUNBOOK.items():
        rule = shipped[name]
        assert rule["labels"]["severity"] == severity, name
        assert rule.get("for") == duration, name
        assert rule["labels"]["procedure"], name


@needs_promtool
def test_promtool_check_rules():
    res = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 20 rules found" in res.stdout


@needs_promtool
def test_promtool_unit_tests():
    res = subprocess.run([promtool, "test", "rules", "alert-response.rules.test.yml"], cwd=RULES.parent,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


@needs_promtool
def test_testbed_rescaling_keeps_expressions_and_shortens_clocks(tmp_path):
    import testbed  # tests/testbed/testbed.py
    out = tmp_path / "rules.yml"
    testbed.rescale_rules(RULES, out, window_scale=10, for_scale=60)
    scaled = {r["alert"]: r for g in yaml.safe_load(out.read_text())["groups"] for r in g["rules"] if "alert" in r}
    assert scaled["PodCrashLoopBackOff"]["for"] == "5s"
    assert scaled["CertificateExpiringInSevenDays"]["for"] == "60s"
    assert "[60s]" in scaled["PodCrashLoopBackOff"]["expr"] and "[10m]" not in scaled["PodCrashLoopBackOff"]["expr"]
    assert "[30s]" in scaled["HighErrorRate"]["expr"]
    res = subprocess.run([promtool, "check", "rules", str(out)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
