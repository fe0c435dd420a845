"""redis_stats_info and redis_config against the test bed's Redis (maxmemory 16mb, allkeys-lru).

The simulator also reads and writes `cache:orchestrator:*` all the time, so the tests use
their own key prefix and assert on counter deltas (at least what the test did), never on
absolute counters. redis_config changes the shared server's maxmemory: a finalizer puts the
original value (16mb) back whatever happens.
"""
from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from module_runner import run_module  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODULES = ["redis_stats_info", "redis_config"]
URL = "{{ lookup('env', 'OCTOLLM_REDIS_URL') }}"

pytestmark = pytest.mark.testbed


# ------------------------------------------------------------------ helpers


def assert_doc_matches_spec(options, spec, where=""):
    assert sorted(options) == sorted(spec), where
    for name, opt in spec.items():
        doc, label = options[name], f"{where}{name}"
        assert doc.get("type", "str") == opt.get("type", "str"), label
        assert bool(doc.get("required")) == bool(opt.get("required")), label
        assert doc.get("default") == opt.get("default"), label
        assert doc.get("choices") == opt.get("choices"), label
        assert doc.get("elements") == opt.get("elements"), label


@pytest.fixture()
def rds(testbed):
    client = redis.from_url(testbed["OCTOLLM_REDIS_URL"], decode_responses=True)
    client.prefix = f"octollm-test-{secrets.token_hex(4)}:"
    yield client
    keys = list(client.scan_iter(match=client.prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture()
def restore_maxmemory(rds):
    original = rds.config_get("maxmemory")["maxmemory"]
    yield original
    rds.config_set("maxmemory", original)


def counters(client):
    stats = client.info("stats")
    return {k: int(stats[k]) for k in ("keyspace_hits", "keyspace_misses", "evicted_keys")}


# ------------------------------------------------------------------ docs
@pytest.mark.parametrize("module", MODULES)
def test_docs_render_and_match_the_argument_spec(testbed_env, module):
    proc = subprocess.run(["ansible-doc", f"octollm.alert_response.{module}"], check=False, cwd=REPO,
                          env=testbed_env, text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0 and "EXAMPLES" in proc.stdout, proc.stderr
    proc = subprocess.run(["ansible-doc", "--json", f"octollm.alert_response.{module}"], check=False, cwd=REPO,
                          env=testbed_env, text=True, capture_output=True, timeout=120)
    doc = json.loads(proc.stdout)[f"octollm.alert_response.{module}"]["doc"]
    mod = __import__(f"ansible_collections.octollm.alert_response.plugins.modules.{module}", fromlist=["x"])
    assert_doc_matches_spec(doc["options"], mod.argument_spec())


# ------------------------------------------------------------------ redis_stats_info
def test_stats_count_our_hits_misses_and_keys(testbed, testbed_env, rds):
    before = run_module(testbed_env, "redis_stats_info", {"url": URL})
    assert not before.get("failed"), before.get("msg")
    for i in range(20):
        rds.set(f"{rds.prefix}hot:{i}", "x" * 100, ex=300)
    for i in range(100):
        assert rds.get(f"{rds.prefix}hot:{i % 20}") is not None  # 100 hits
    for i in range(50):
        assert rds.get(f"{rds.prefix}missing:{i}") is None  # 50 misses
    after = run_module(testbed_env, "redis_stats_info", {"url": URL})
    independent = counters(rds)
    assert after["keyspace_hits"] - before["keyspace_hits"] >= 100
    assert after["keyspace_misses"] - before["keyspace_misses"] >= 50
    assert after["keyspace_hits"] <= independent["keyspace_hits"]
    hits, misses = after["keyspace_hits"], after["keyspace_misses"]
    assert after["hit_rate"] == round(hits / (hits + misses), 4)
    assert after["keyspace"]["db0"]["keys"] >= 20 and after["keyspace"]["db0"]["expires"] >= 20
    config = rds.config_get("maxmemory*")
    assert after["maxmemory"] == int(config["maxmemory"]) and after["maxmemory_policy"] == config["maxmemory-policy"]
    assert after["memory_use_ratio"] == round(after["used_memory"] / after["maxmemory"], 4)
    assert after["sample"] is None
    # the password inside the URL never reaches the output
    password = urlsplit(testbed["OCTOLLM_REDIS_URL"]).password
    assert password not in after["_stdout"] and "127.0.0.1" in after["_stdout"]


def test_sample_gives_rates_with_evictions(testbed_env, rds):
    """Fill the 16mb cache with our own big values while the module samples: hits, misses
    and evictions per second over the interval, and the interval's own hit rate."""
    payload = "v" * 100_000
    for i in range(150):  # ~15 MB: the cache is now at its limit
        rds.set(f"{rds.prefix}fill:{i}", payload, ex=120)
    rds.set(f"{rds.prefix}hot", "1", ex=120)
    stop = threading.Event()

    def traffic():
        i = 0
        while not stop.is_set():
            rds.set(f"{rds.prefix}big:{i}", payload, ex=120)  # forces evictions
            rds.get(f"{rds.prefix}hot")
            rds.get(f"{rds.prefix}nope:{i}")
            i += 1
            time.sleep(0.01)

    thread = threading.Thread(target=traffic, daemon=True)
    start = counters(rds)
    thread.start()
    try:
        res = run_module(testbed_env, "redis_stats_info", {"url": URL, "sample_seconds": 2})
    finally:
        stop.set()
        thread.join(timeout=10)
    end = counters(rds)
    assert not res.get("failed"), res.get("msg")
    sample = res["sample"]
    assert 2 <= sample["interval_s"] < 3
    assert sample["keyspace_hits"] > 0 and sample["keyspace_misses"] > 0 and sample["evicted_keys"] > 0
    assert abs(sample["evictions_per_s"] - sample["evicted_keys"] / sample["interval_s"]) < 0.05
    assert abs(sample["hits_per_s"] - sample["keyspace_hits"] / sample["interval_s"]) < 0.05
    lookups = sample["keyspace_hits"] + sample["keyspace_misses"]
    assert sample["hit_rate"] == round(sample["keyspace_hits"] / lookups, 4)
    # the interval's deltas fit inside what an independent reader saw around it
    assert sample["evicted_keys"] <= end["evicted_keys"] - start["evicted_keys"]
    assert sample["keyspace_misses"] <= end["keyspace_misses"] - start["keyspace_misses"]


def test_host_port_password_options_and_bad_password(testbed, testbed_env):
    url = urlsplit(testbed["OCTOLLM_REDIS_URL"])
    ok = run_module(testbed_env, "redis_stats_info", {"login_host": url.hostname, "login_port": url.port,
                                                      "login_password": url.password, "db": 0})
    assert not ok.get("failed"), ok.get("msg")
    assert ok["redis_version"] and url.password not in ok["_stdout"]
    bad = run_module(testbed_env, "redis_stats_info", {"login_host": url.hostname, "login_port": url.port,
                                                       "login_password": "wrong-password-xyz"})
    assert bad["failed"] is True and f"{url.hostname}:{url.port} db 0" in bad["msg"] and "check url" in bad["msg"]
    assert "wrong-password-xyz" not in bad["_stdout"]


# ------------------------------------------------------------------ redis_config
def test_config_check_real_check_real(testbed_env, rds, restore_maxmemory):
    assert restore_maxmemory == str(16 * 1024 * 1024)
    args = {"url": URL, "name": "maxmemory", "value": "24mb"}

    check = run_module(testbed_env, "redis_config", args, check=True, diff=True)
    assert check["changed"] is True and not check.get("failed"), check.get("msg")
    assert check["diff"] == {"before": {"maxmemory": "16777216"}, "after": {"maxmemory": "24mb"}}
    assert rds.config_get("maxmemory")["maxmemory"] == "16777216"

    real = run_module(testbed_env, "redis_config", args, diff=True)
    assert real["changed"] is True and real["previous"] == "16777216" and real["value"] == str(24 * 1024 * 1024)
    assert real["value_bytes"] == 24 * 1024 * 1024 and check["value_bytes"] == 24 * 1024 * 1024
    assert rds.config_get("maxmemory")["maxmemory"] == str(24 * 1024 * 1024)

    check_again = run_module(testbed_env, "redis_config", args, check=True)
    assert check_again["changed"] is False
    again = run_module(testbed_env, "redis_config", dict(args, value=str(24 * 1024 * 1024)))  # same, in bytes
    assert again["changed"] is False and again["value"] == str(24 * 1024 * 1024)


def test_config_refuses_jumps_above_max_ratio(testbed_env, rds, restore_maxmemory):
    args = {"url": URL, "name": "maxmemory", "value": "64mb"}  # x4 the 16mb
    refused = run_module(testbed_env, "redis_config", args)
    assert refused["failed"] is True and refused["changed"] is False
    assert "max_ratio" in refused["msg"] and "maxmemory" in refused["msg"] and "x4.0" in refused["msg"]
    assert rds.config_get("maxmemory")["maxmemory"] == restore_maxmemory
    allowed = run_module(testbed_env, "redis_config", dict(args, max_ratio=4), check=True)
    assert allowed["changed"] is True and not allowed.get("failed")
    assert rds.config_get("maxmemory")["maxmemory"] == restore_maxmemory
    down = run_module(testbed_env, "redis_config", dict(args, value="8mb"), check=True)  # decreases are not capped
    assert down["changed"] is True and not down.get("failed")


def test_config_reads_and_reports_unknown_settings(testbed_env, rds):
    read = run_module(testbed_env, "redis_config", {"url": URL, "name": "maxmemory-policy"})
    assert read["changed"] is False and read["value"] == rds.config_get("maxmemory-policy")["maxmemory-policy"]
    assert read["value_bytes"] is None
    same = run_module(testbed_env, "redis_config", {"url": URL, "name": "maxmemory-policy",
                                                    "value": read["value"].upper()})
    assert same["changed"] is False
    unknown = run_module(testbed_env, "redis_config", {"url": URL, "name": "no-such-setting", "value": "1"})
    assert unknown["failed"] is True and "no setting 'no-such-setting'" in unknown["msg"]
    glob = run_module(testbed_env, "redis_config", {"url": URL, "name": "maxmemory*"})
    assert glob["failed"] is True and "glob" in glob["msg"]


def test_size_normalization():
    from ansible_collections.octollm.alert_response.plugins.module_utils.redis import (
        normalize_value,
        parse_size,
        ratio_exceeded,
    )
    assert parse_size("16mb") == 16 * 1024 * 1024 and parse_size("16m") == 16_000_000
    assert parse_size("1GB") == 1024 ** 3 and parse_size("16777216") == 16777216 and parse_size("lru") is None
    assert normalize_value("Allkeys-LRU") == "allkeys-lru"
    assert ratio_exceeded("16777216", "32mb", 2.0) is None and ratio_exceeded("16777216", "33mb", 2.0) == 2.062
    assert ratio_exceeded("0", "1gb", 2.0) is None  # maxmemory 0 = no limit: any value is a decrease
