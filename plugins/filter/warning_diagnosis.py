# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cause rules of the warning and informational procedures as Jinja filters (the logic is
plugins/module_utils/warning_diagnosis.py and plugins/module_utils/usage.py).

    {{ evidence | octollm.alert_response.diagnose_warning('node_cpu_pressure', options) }}
    {{ samples | octollm.alert_response.memory_trend }}
    pod=~"{{ pod_names | octollm.alert_response.promql_alternatives }}"
"""
from __future__ import annotations

from ansible_collections.octollm.alert_response.plugins.module_utils.usage import regex_alternatives, trend
from ansible_collections.octollm.alert_response.plugins.module_utils.warning_diagnosis import diagnose


def _diagnose_warning(evidence, procedure, options=None):
    return diagnose(evidence, procedure, options)


def _memory_trend(samples, options=None):
    return trend(samples, options)


class FilterModule:
    """Warning and informational diagnosis filters."""

    def filters(self):
        return {
            "diagnose_warning": _diagnose_warning,
            "memory_trend": _memory_trend,
            "promql_alternatives": regex_alternatives,
        }
