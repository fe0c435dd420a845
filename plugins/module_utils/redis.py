# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis for the alert-response modules: connection, option spec, INFO maths, CONFIG values.

The runbook's LowCacheHitRate procedure divides lifetime counters (runbook defect 7.7):
``stats_snapshot`` + ``interval_rates`` give the rate over a short interval instead, and
``redis_config`` exists because raising the container's memory limit does nothing unless
``maxmemory`` goes up with it (matrix 7.16).
"""
from __future__ import annotations

import re
import time
import traceback
from urllib.parse import unquote, urlsplit

from ansible.module_utils.basic import missing_required_lib

try:
    import redis
    from redis.exceptions import RedisError
    try:  # redis-py >= 4.1; older versions do not retry anyway
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:  # pragma: no cover
        Retry = NoBackoff = None
    HAS_REDIS = True
    REDIS_IMPORT_ERROR = None
    REDIS_ERRORS = (RedisError,)
except ImportError:  # pragma: no cover - depends on the environment
    redis = Retry = NoBackoff = None
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = traceback.format_exc()

    class _RedisUnavailable(Exception):
        """Stands in for redis' errors when redis is missing (the module fails first)."""

    REDIS_ERRORS = (_RedisUnavailable,)

# Redis' own memory units (redis.conf): k/m/g are powers of 1000, kb/mb/gb of 1024.
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000 ** 2, "mb": 1024 ** 2, "g": 1000 ** 3, "gb": 1024 ** 3}
_SIZE = re.compile(r"^\s*(\d+)\s*([a-z]*)\s*$", re.IGNORECASE)

STAT_COUNTERS = ("keyspace_hits", "keyspace_misses", "evicted_keys", "expired_keys")


def redis_argument_spec():
    """Connection options (documented in doc_fragments/redis.py)."""
    return dict(
        url=dict(type="str"),
        login_host=dict(type="str"),
        login_port=dict(type="int"),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        db=dict(type="int"),
        tls=dict(type="bool", default=False),
        validate_certs=dict(type="bool", default=True),
        ca_certs=dict(type="path"),
        client_cert_file=dict(type="path"),
        client_key_file=dict(type="path"),
        connect_timeout=dict(type="float", default=10),
    )


def ensure_required_libs(module):
    if not HAS_REDIS:
        module.fail_json(msg=missing_required_lib("redis"), exception=REDIS_IMPORT_ERROR)


def parse_url(module, url):
    """host/port/user/password/db/tls from a redis:// URL; hides its password."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        module.fail_json(msg="The url option is not a valid Redis URL; use redis://:password@host:port/db")
    if parts.scheme not in ("redis", "rediss", "unix"):
        module.fail_json(msg="Unsupported Redis URL scheme %r; use redis://, rediss:// or unix://" % parts.scheme)
    out = {"tls": parts.scheme == "rediss"}
    if parts.password:
        out["password"] = unquote(parts.password)
        module.no_log_values.add(out["password"])
        module.no_log_values.add(parts.password)
    if parts.username:
        out["username"] = unquote(parts.username)
    if parts.scheme == "unix":
        out["unix_socket_path"] = parts.path
    else:
        out["host"] = parts.hostname
        out["port"] = port
        if parts.path.strip("/").isdigit():
            out["db"] = int(parts.path.strip("/"))
    return out


def connection_kwargs(module):
    params = module.params
    conf = parse_url(module, params["url"]) if params["url"] else {"tls": False}
    for option, key in (("login_host", "host"), ("login_port", "port"), ("login_user", "username"),
                        ("login_password", "password"), ("db", "db")):
        if params.get(option) is not None:
            conf[key] = params[option]
    tls = conf.pop("tls") or params["tls"]
    kwargs = dict(conf, socket_timeout=params["connect_timeout"], socket_connect_timeout=params["connect_timeout"],
                  decode_responses=True)
    if "unix_socket_path" not in kwargs:
        kwargs.setdefault("host", "localhost")
        kwargs["port"] = kwargs.get("port") or 6379
    kwargs.setdefault("db", 0)
    if Retry is not None:
        # A module fails fast and says why: redis-py's default retries a wrong password
        # (an AuthenticationError is a ConnectionError) with back-off for seconds.
        kwargs["retry"] = Retry(NoBackoff(), 0)
    if tls:
        kwargs.update(ssl=True, ssl_cert_reqs="required" if params["validate_certs"] else "none",
                      ssl_ca_certs=params["ca_certs"], ssl_certfile=params["client_cert_file"],
                      ssl_keyfile=params["client_key_file"])
    return kwargs


def describe_target(kwargs):
    where = kwargs.get("unix_socket_path") or "%s:%s" % (kwargs.get("host"), kwargs.get("port"))
    return "%s db %s" % (where, kwargs.get("db", 0))


def connect(module):
    """A connected client (PING answered); fails the module with the next step."""
    ensure_required_libs(module)
    kwargs = connection_kwargs(module)
    client = redis.Redis(**kwargs)
    try:
        client.ping()
    except REDIS_ERRORS as exc:
        module.fail_json(msg="Failed to connect to Redis at %s: %s; check url/login_* (password, TLS) "
                             "and that Redis is reachable" % (describe_target(kwargs), exc))
    return client, describe_target(kwargs)


# ---------------------------------------------------------------- INFO
def hit_rate(hits, misses):
    """hits / (hits + misses), or None when there was no lookup at all."""
    lookups = hits + misses
    return round(hits / float(lookups), 4) if lookups else None


def stats_snapshot(client):
    """One consistent read of INFO server/memory/stats/keyspace (one round trip)."""
    pipe = client.pipeline(transaction=False)
    for section in ("server", "memory", "stats", "keyspace"):
        pipe.info(section)
    server, memory, stats, keyspace = pipe.execute()
    snap = {key: int(stats.get(key, 0)) for key in STAT_COUNTERS}
    maxmemory = int(memory.get("maxmemory", 0))
    used = int(memory["used_memory"])
    snap.update(
        taken_at=time.monotonic(),
        redis_version=server.get("redis_version"),
        uptime_in_seconds=int(server.get("uptime_in_seconds", 0)),
        used_memory=used,
        used_memory_human=memory.get("used_memory_human"),
        used_memory_peak=int(memory.get("used_memory_peak", 0)),
        maxmemory=maxmemory,
        maxmemory_human=memory.get("maxmemory_human"),
        maxmemory_policy=memory.get("maxmemory_policy"),
        memory_use_ratio=round(used / float(maxmemory), 4) if maxmemory else None,
        keyspace={db: {k: int(v) for k, v in info.items()} for db, info in keyspace.items()
                  if isinstance(info, dict)},
    )
    snap["hit_rate"] = hit_rate(snap["keyspace_hits"], snap["keyspace_misses"])
    return snap


def interval_rates(before, after):
    """Per-second rates between two snapshots; None when the counters went backwards
    (Redis restarted or CONFIG RESETSTAT between the samples)."""
    elapsed = after["taken_at"] - before["taken_at"]
    deltas = {key: after[key] - before[key] for key in STAT_COUNTERS}
    if elapsed <= 0 or any(value < 0 for value in deltas.values()):
        return None
    return dict(
        interval_s=round(elapsed, 3),
        keyspace_hits=deltas["keyspace_hits"],
        keyspace_misses=deltas["keyspace_misses"],
        evicted_keys=deltas["evicted_keys"],
        expired_keys=deltas["expired_keys"],
        hits_per_s=round(deltas["keyspace_hits"] / elapsed, 3),
        misses_per_s=round(deltas["keyspace_misses"] / elapsed, 3),
        evictions_per_s=round(deltas["evicted_keys"] / elapsed, 3),
        expirations_per_s=round(deltas["expired_keys"] / elapsed, 3),
        hit_rate=hit_rate(deltas["keyspace_hits"], deltas["keyspace_misses"]),
    )


# ---------------------------------------------------------------- CONFIG values
def parse_size(value):
    """Bytes for '16777216', '16mb', '1g'...; None when the value is not a size."""
    match = _SIZE.match(str(value))
    if not match or match.group(2).lower() not in _UNITS:
        return None
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def normalize_value(value):
    """What to compare: an integer for sizes and plain numbers, else the lower-cased text
    (CONFIG GET answers 'maxmemory' in bytes whatever unit it was set with)."""
    size = parse_size(value)
    if size is not None:
        return size
    return " ".join(str(value).split()).lower()


def ratio_exceeded(current, desired, max_ratio):
    """The ratio desired/current when an increase goes beyond max_ratio, else None.

    Only numbers are capped, and only upwards from a non-zero value (maxmemory 0 means
    'no limit': any value is then a decrease)."""
    now, new = normalize_value(current), normalize_value(desired)
    if not isinstance(now, int) or not isinstance(new, int) or now <= 0:
        return None
    ratio = new / float(now)
    return round(ratio, 3) if ratio > max_ratio else None


def config_get(client, name):
    """The current value of one setting, or None when Redis does not know the name."""
    values = client.config_get(name)
    return values.get(name)
