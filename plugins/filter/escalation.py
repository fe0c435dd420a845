# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Escalation decision trees, per-procedure escalation criteria and SLA clocks as Jinja
filters: ``octollm.alert_response.escalate`` and friends. The logic lives in
``plugins/module_utils/escalation.py`` so that modules use the same code."""
from __future__ import annotations

from ansible_collections.octollm.alert_response.plugins.module_utils.escalation import (
    escalate,
    escalation_criteria,
    escalation_levels,
    escalation_max,
    escalation_rank,
    sla_deadlines,
    sla_status,
    tree_infrastructure,
    tree_performance,
    tree_service_outage,
)


class FilterModule:
    """Escalation trees, criteria and SLA clocks as Jinja filters."""

    def filters(self):
        return {
            "escalate": escalate,
            "escalation_criteria": escalation_criteria,
            "escalation_levels": escalation_levels,
            "escalation_rank": escalation_rank,
            "escalation_max": escalation_max,
            "tree_service_outage": tree_service_outage,
            "tree_performance": tree_performance,
            "tree_infrastructure": tree_infrastructure,
            "sla_deadlines": sla_deadlines,
            "sla_status": sla_status,
        }
