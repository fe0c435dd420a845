#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_config
short_description: Read or change one Redis runtime setting (CONFIG GET / CONFIG SET)
version_added: 0.1.0
description:
  - Reads one setting with C(CONFIG GET) and, when O(value) is given and differs, sets it with
    C(CONFIG SET).
  - Exists for the "cache too small" branch of LowCacheHitRate (runbook section 13). Raising
    the Redis container's memory limit does nothing unless C(maxmemory) is raised with it
    (matrix 7.16), and C(maxmemory) can be changed at runtime without a restart (which would
    empty a non-persistent cache).
  - Sizes are compared in bytes, so V(32mb) and V(33554432) are the same value (Redis units,
    k/m/g are powers of 1000, kb/mb/gb powers of 1024). Other values are compared as text,
    ignoring case.
  - "Guardrail: a numeric setting is never raised more than O(max_ratio) times its current
    value in one step (a typo such as V(16gb) for V(16mb) would hand the cache all the node's
    memory). Raise O(max_ratio) on purpose to go further."
options:
  name:
    description:
      - The setting, for example V(maxmemory) or V(maxmemory-policy). No glob patterns.
    type: str
    required: true
  value:
    description:
      - The wanted value. Omit it to only read the setting.
    type: str
  max_ratio:
    description:
      - Largest allowed new/current ratio for a numeric setting. Decreases and settings whose
        current value is V(0) (C(maxmemory 0) means no limit) are not capped.
    type: float
    default: 2.0
extends_documentation_fragment:
  - octollm.alert_response.redis
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Reads the setting and reports whether it would change, and to what; nothing is set.
  diff_mode:
    support: full
    details: The setting before and after.
  platform:
    platforms: posix
  action_group:
    support: full
    membership: [octollm.alert_response.redis]
notes:
  - C(CONFIG SET) changes the running server only. Make the same change where Redis is
    configured (StatefulSet arguments, ConfigMap) or the next restart undoes it.
  - Needs the C(CONFIG) command (managed Redis services often rename or disable it).
seealso:
  - module: octollm.alert_response.redis_stats_info
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Raise maxmemory together with the Redis container's memory limit
  octollm.alert_response.redis_config:
    url: "{{ alert_response_redis_url }}"
    name: maxmemory
    value: 48mb
  register: cache_maxmemory

- name: Read the eviction policy
  octollm.alert_response.redis_config:
    url: "{{ alert_response_redis_url }}"
    name: maxmemory-policy
  register: cache_policy

- name: Go beyond twice the current limit, on purpose
  octollm.alert_response.redis_config:
    url: "{{ alert_response_redis_url }}"
    name: maxmemory
    value: 4gb
    max_ratio: 8
"""

RETURN = r"""
name:
  description: The setting.
  returned: success
  type: str
  sample: maxmemory
value:
  description: Its value now, as C(CONFIG GET) answers it (in check mode, the value it would get).
  returned: success
  type: str
  sample: "50331648"
value_bytes:
  description: RV(value) in bytes when it is a size (C(maxmemory) and the like) or a plain
    integer, to compare with the container's memory limit; C(null) otherwise.
  returned: success
  type: int
  sample: 50331648
previous:
  description: Its value before the task.
  returned: success
  type: str
  sample: "16777216"
diff:
  description: Before and after, when run with C(--diff).
  returned: when diff mode is on
  type: dict
  sample: {before: {maxmemory: "16777216"}, after: {maxmemory: "48mb"}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.redis import (
    REDIS_ERRORS,
    config_get,
    connect,
    normalize_value,
    parse_size,
    ratio_exceeded,
    redis_argument_spec,
)


def argument_spec():
    spec = redis_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        value=dict(type="str"),
        max_ratio=dict(type="float", default=2.0),
    )
    return spec


def read_setting(module, client, target):
    name = module.params["name"]
    try:
        current = config_get(client, name)
    except REDIS_ERRORS as exc:
        module.fail_json(msg="CONFIG GET %s failed on Redis at %s: %s; the user needs the CONFIG command "
                             "(it may be renamed or disabled on managed services)" % (name, target, exc))
    if current is None:
        module.fail_json(msg="Redis at %s has no setting %r; check the name (CONFIG GET * lists them)"
                             % (target, name))
    return current


def set_setting(module, client, target, current):
    """CONFIG SET unless the value is already there; returns the result dict."""
    params = module.params
    name, value = params["name"], params["value"]
    result = dict(changed=False, name=name, value=current, previous=current)
    if value is None or normalize_value(value) == normalize_value(current):
        return result
    ratio = ratio_exceeded(current, value, params["max_ratio"])
    if ratio is not None:
        module.fail_json(msg="Refusing to set %s on Redis at %s from %s to %s: that is x%s, above max_ratio x%s; "
                             "raise max_ratio if the jump is intended" % (name, target, current, value, ratio,
                                                                          params["max_ratio"]), **result)
    result.update(changed=True, value=value)
    if module._diff:
        result["diff"] = dict(before={name: current}, after={name: value})
    if module.check_mode:
        return result
    try:
        client.config_set(name, value)
        result["value"] = config_get(client, name)
    except REDIS_ERRORS as exc:
        module.fail_json(msg="CONFIG SET %s %s failed on Redis at %s: %s; check the value (Redis rejected it)"
                             % (name, value, target, exc), **dict(result, changed=False, value=current))
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    name = module.params["name"]
    if not name or any(ch in name for ch in "*?[ "):
        module.fail_json(msg="name must be one setting without glob characters, got %r" % name)
    if module.params["max_ratio"] < 1:
        module.fail_json(msg="max_ratio must be at least 1")
    client, target = connect(module)
    try:
        result = set_setting(module, client, target, read_setting(module, client, target))
    finally:
        client.close()
    result["value_bytes"] = parse_size(result["value"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
