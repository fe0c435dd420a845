"""Joining alerts into one incident (plugins/module_utils/incident.py open_incident), with a
real SQLite ledger: a graver alert raises the severity, its SLA clocks and the title, and its
procedure leads; every procedure that ran is listed and the report says so."""
from __future__ import annotations

import pytest

from ansible_collections.octollm.alert_response.plugins.module_utils import incident as inc

NOW = 1_800_000_000.0
TARGET = "deployment/octollm-prod/checkout"


def alert(name, severity):
    return {"alertname": name, "status": "firing", "target_key": TARGET, "starts_at": None,
            "labels": {"alertname": name, "severity": severity, "namespace": "octollm-prod", "deployment": "checkout"}}


def test_a_graver_alert_raises_severity_clocks_and_title_and_leads_the_incident(ledger):
    first, created, _alerts = inc.open_incident(ledger, alert("DeploymentRolloutObserved", "info"),
                                                "deployment_observed", now=NOW)
    assert created and first["severity"] == "info"
    assert first["title"] == f"DeploymentRolloutObserved on {TARGET}"
    joined, created, _alerts = inc.open_incident(ledger, alert("HighErrorRate", "critical"), "high_error_rate", now=NOW + 60)
    assert not created and joined["id"] == first["id"]
    assert joined["severity"] == "critical"
    # critical: acknowledge within 5 min, resolve within 1 h of the incident's start
    assert joined["resolve_deadline"] - first["opened_at"] == pytest.approx(3600, abs=1)
    assert joined["title"].startswith(f"HighErrorRate on {TARGET}")
    assert "DeploymentRolloutObserved" in joined["title"]
    # the graver alert's procedure leads (it remediates); the opener stays listed
    assert joined["procedure"] == "high_error_rate"
    assert joined["data"]["procedures"] == ["deployment_observed", "high_error_rate"]
    report = inc.report_markdown(ledger, first["id"])
    assert "**Procedure**: high_error_rate (also ran: deployment_observed)" in report
    assert "**Severity**: critical" in report


def test_a_milder_alert_joins_without_changing_severity_or_title(ledger):
    first, _created, _alerts = inc.open_incident(ledger, alert("HighErrorRate", "critical"), "high_error_rate", now=NOW)
    joined, created, _alerts = inc.open_incident(ledger, alert("DeploymentRolloutObserved", "info"),
                                                 "deployment_observed", now=NOW + 30)
    assert not created and joined["severity"] == "critical" and joined["title"] == first["title"]
    assert joined["data"]["procedures"] == ["high_error_rate", "deployment_observed"]
    # the same procedure again (a re-fired alert, a rerun) is listed once
    again, _created, _alerts = inc.open_incident(ledger, alert("HighErrorRate", "critical"), "high_error_rate", now=NOW + 90)
    assert again["data"]["procedures"] == ["high_error_rate", "deployment_observed"]
    assert again["procedure"] == "high_error_rate"
    assert "**Procedure**: high_error_rate (also ran: deployment_observed)" in inc.report_markdown(ledger, first["id"])
