# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the Redis modules (spec: module_utils/redis.py).

Option names follow community.general's redis fragment, plus `url` and `db`."""
from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Redis URL, V(redis://[[user]:password@]host:port/db) or V(rediss://...) for TLS.
      - Only the password inside it is hidden from the task output (added to the module's
        C(no_log_values)).
      - The C(login_*), O(db) and TLS options, when set, override the URL's values.
    type: str
  login_host:
    description:
      - Redis host. Default V(localhost) when no O(url) is given.
    type: str
  login_port:
    description:
      - Redis port. Default V(6379) when no O(url) is given.
    type: int
  login_user:
    description:
      - ACL user (Redis 6 and later).
    type: str
  login_password:
    description:
      - Password (C(requirepass) or the ACL user's).
    type: str
  db:
    description:
      - Database number. Default V(0) or the URL's.
    type: int
  tls:
    description:
      - Connect with TLS. Implied by a V(rediss://) URL.
    type: bool
    default: false
  validate_certs:
    description:
      - Verify the server certificate (TLS only).
    type: bool
    default: true
  ca_certs:
    description:
      - CA bundle to verify the server with (TLS only).
    type: path
  client_cert_file:
    description:
      - Client certificate for mutual TLS.
    type: path
  client_key_file:
    description:
      - Private key of O(client_cert_file).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection and for each command.
    type: float
    default: 10
requirements:
  - redis (the redis-py package, on the host that runs the module)
"""
