#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_stats_info
short_description: Cache hit rate, evictions and memory of a Redis server
version_added: 0.1.0
description:
  - Reads what the LowCacheHitRate procedure (runbook section 13) looks at, from
    C(INFO server), C(INFO memory), C(INFO stats) and C(INFO keyspace) in one round trip.
  - The hit rate C(keyspace_hits / (keyspace_hits + keyspace_misses)) is returned together
    with both counters. Those counters count since the server started (or since
    C(CONFIG RESETSTAT)), so that ratio moves slowly and says little about now; the runbook
    alert divides the same lifetime counters (runbook defect 7.7).
  - With O(sample_seconds) the module reads twice and returns the rates over that interval
    (hits, misses, evictions, expirations per second and the interval's own hit rate), which
    is what a diagnosis needs.
  - Read-only.
options:
  sample_seconds:
    description:
      - Read the counters twice, this many seconds apart, and return RV(sample).
      - V(0) reads once.
    type: float
    default: 0
extends_documentation_fragment:
  - octollm.alert_response.redis
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Read-only; reads the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    support: full
    membership: [octollm.alert_response.redis]
seealso:
  - module: octollm.alert_response.redis_config
  - module: octollm.alert_response.prometheus_query
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Read the cache's hit rate and evictions over 10 seconds
  octollm.alert_response.redis_stats_info:
    url: "{{ alert_response_redis_url }}"
    sample_seconds: 10
  register: cache_stats

- name: Cache too small when it evicts and memory is at its limit
  ansible.builtin.set_fact:
    low_cache_cause: cache_too_small
  when:
    - cache_stats.sample.evictions_per_s > 0
    - (cache_stats.memory_use_ratio | default(0, true)) > 0.9

- name: Same, with host/port/password and TLS
  octollm.alert_response.redis_stats_info:
    login_host: redis.octollm-prod.svc
    login_port: 6379
    login_password: "{{ vault_redis_password }}"
    tls: true
    ca_certs: /etc/ssl/octollm/ca.pem
"""

RETURN = r"""
redis_version:
  description: Server version.
  returned: success
  type: str
  sample: 7.0.15
uptime_in_seconds:
  description: Seconds since the server started (the lifetime counters' window).
  returned: success
  type: int
  sample: 86400
keyspace_hits:
  description: Lookups that found their key, since start or C(CONFIG RESETSTAT).
  returned: success
  type: int
  sample: 15529
keyspace_misses:
  description: Lookups that did not find their key, same window.
  returned: success
  type: int
  sample: 221
hit_rate:
  description: RV(keyspace_hits) / (RV(keyspace_hits) + RV(keyspace_misses)) over the server's
    lifetime, C(null) before the first lookup. See C(hit_rate) in RV(sample) for the current rate.
  returned: success
  type: float
  sample: 0.9859
evicted_keys:
  description: Keys evicted because of C(maxmemory), same window.
  returned: success
  type: int
  sample: 1024
expired_keys:
  description: Keys removed because their TTL ran out, same window.
  returned: success
  type: int
  sample: 300
used_memory:
  description: Bytes allocated by Redis.
  returned: success
  type: int
  sample: 15728640
used_memory_human:
  description: The same, as Redis prints it.
  returned: success
  type: str
  sample: 15.00M
used_memory_peak:
  description: Highest RV(used_memory) since start.
  returned: success
  type: int
  sample: 16777216
maxmemory:
  description: The C(maxmemory) limit in bytes, V(0) for none.
  returned: success
  type: int
  sample: 16777216
maxmemory_human:
  description: The same, as Redis prints it.
  returned: success
  type: str
  sample: 16.00M
maxmemory_policy:
  description: What Redis does at the limit.
  returned: success
  type: str
  sample: allkeys-lru
memory_use_ratio:
  description: RV(used_memory) / RV(maxmemory); C(null) without a limit.
  returned: success
  type: float
  sample: 0.9375
keyspace:
  description: Keys per database.
  returned: success
  type: dict
  sample: {db0: {keys: 200, expires: 200, avg_ttl: 292211}}
sample:
  description: Counter deltas and per-second rates over O(sample_seconds). C(null) when not
    sampled, or when the counters went backwards between the two reads (restart, reset).
  returned: success
  type: dict
  sample:
    interval_s: 10.002
    keyspace_hits: 1500
    keyspace_misses: 500
    evicted_keys: 40
    expired_keys: 3
    hits_per_s: 149.97
    misses_per_s: 49.99
    evictions_per_s: 3.999
    expirations_per_s: 0.3
    hit_rate: 0.75
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.redis import (
    REDIS_ERRORS,
    connect,
    interval_rates,
    redis_argument_spec,
    stats_snapshot,
)


def argument_spec():
    spec = redis_argument_spec()
    spec.update(sample_seconds=dict(type="float", default=0))
    return spec


def execute_module(module, client):
    first = stats_snapshot(client)
    result = dict(first, changed=False, sample=None)
    seconds = module.params["sample_seconds"]
    if seconds > 0:
        time.sleep(seconds)
        second = stats_snapshot(client)
        result.update(second, sample=interval_rates(first, second))
        if result["sample"] is None:
            module.warn("Redis counters went backwards during the sample (restart or CONFIG RESETSTAT); "
                        "no rates this time, run again")
    result.pop("taken_at")
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if module.params["sample_seconds"] < 0 or module.params["sample_seconds"] > 300:
        module.fail_json(msg="sample_seconds must be between 0 and 300")
    client, target = connect(module)
    try:
        result = execute_module(module, client)
    except REDIS_ERRORS as exc:
        module.fail_json(msg="Failed to read INFO from Redis at %s: %s; the user needs the INFO command "
                             "(ACL +info)" % (target, exc))
    finally:
        client.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
