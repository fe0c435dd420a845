# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options for the Prometheus HTTP API (spec: module_utils/prometheus.py)."""
from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Base URL of Prometheus (or of an API-compatible server such as Thanos Query), without
        C(/api/v1), for example V(http://prometheus.monitoring.svc:9090).
    type: str
    required: true
  bearer_token:
    description:
      - "Sent as C(Authorization: Bearer <token>) (for example a ServiceAccount token in front
        of an OAuth proxy)."
    type: str
  url_username:
    description:
      - User for HTTP basic authentication.
    type: str
  url_password:
    description:
      - Password for HTTP basic authentication.
    type: str
  validate_certs:
    description:
      - Verify the server's TLS certificate.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle to verify the server's certificate with.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP request; also sent to Prometheus as the query timeout.
    type: float
    default: 30
"""
