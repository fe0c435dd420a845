# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Diagnosis rules as Jinja filters (the logic is plugins/module_utils/diagnosis.py).

    {{ evidence | octollm.alert_response.diagnose('pod_crashloop', options) }}
    {{ lines | octollm.alert_response.classify_log_lines }}
    {{ '256Mi' | octollm.alert_response.scale_quantity(2) }}          -> 512Mi
    {{ samples | octollm.alert_response.onset_of_latest_run(0.1) }}
    {{ workload_info_result | octollm.alert_response.service_facts(prometheus_loop.results, 'ratio', 0.1) }}
"""
from __future__ import annotations

from ansible_collections.octollm.alert_response.plugins.module_utils.diagnosis import (
    classify_lines,
    diagnose,
    onset_of_latest_run,
    quantity,
    rollout_facts,
    scale_quantity,
    service_facts,
)


def _diagnose(evidence, procedure, options=None):
    return diagnose(evidence, procedure, options)


class FilterModule:
    """Diagnosis filters."""

    def filters(self):
        return {
            "diagnose": _diagnose,
            "classify_log_lines": classify_lines,
            "scale_quantity": scale_quantity,
            "k8s_quantity": quantity,
            "onset_of_latest_run": onset_of_latest_run,
            "service_facts": service_facts,
            "rollout_facts": rollout_facts,
        }
