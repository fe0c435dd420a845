"""prometheus_query against the test bed's Prometheus (real series from the exporters and
kube-state-metrics). Results are compared with a direct HTTP API call at the same
evaluation time, so that both sides see the same data."""
from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import module_runner
import pytest

REPO = Path(__file__).resolve().parents[2]
URL = "{{ lookup('env', 'OCTOLLM_PROMETHEUS_URL') }}"

pytestmark = pytest.mark.testbed


# ------------------------------------------------------------------ helpers
def run_module(env, args, check=False):
    """Run prometheus_query through ansible-playbook; returns its result (+ `_stdout`)."""
    return module_runner.run_module(env, "prometheus_query", args, check)


def direct(testbed, path, **params):
    url = f"{testbed['OCTOLLM_PROMETHEUS_URL']}/api/v1/{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)["data"]


def assert_doc_matches_spec(options, spec, where=""):
    assert sorted(options) == sorted(spec), where
    for name, opt in spec.items():
        doc, label = options[name], f"{where}{name}"
        assert doc.get("type", "str") == opt.get("type", "str"), label
        assert bool(doc.get("required")) == bool(opt.get("required")), label
        assert doc.get("default") == opt.get("default"), label
        assert doc.get("choices") == opt.get("choices"), label
        assert doc.get("elements") == opt.get("elements"), label
        if opt.get("options"):
            assert_doc_matches_spec(doc["suboptions"], opt["options"], f"{label}.")


def test_docs_render_and_match_the_argument_spec(testbed_env):
    name = "octollm.alert_response.prometheus_query"
    proc = subprocess.run(["ansible-doc", name], check=False, cwd=REPO, env=testbed_env, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0 and "wait_until" in proc.stdout, proc.stderr
    proc = subprocess.run(["ansible-doc", "--json", name], check=False, cwd=REPO, env=testbed_env, text=True,
                          capture_output=True, timeout=120)
    doc = json.loads(proc.stdout)[name]["doc"]
    from ansible_collections.octollm.alert_response.plugins.modules import prometheus_query
    assert_doc_matches_spec(doc["options"], prometheus_query.argument_spec())


# ------------------------------------------------------------------ queries
def test_instant_query_of_real_series(testbed, testbed_env):
    at = time.time() - 5
    res = run_module(testbed_env, {"url": URL, "query": "up", "time": str(at)})
    assert not res.get("failed"), res.get("msg")
    expected = direct(testbed, "query", query="up", time=at)
    assert res["result_type"] == "vector" and res["scalar"] is None  # several series: no scalar
    assert sorted(json.dumps(r, sort_keys=True) for r in res["result"]) == \
        sorted(json.dumps(r, sort_keys=True) for r in expected["result"])
    assert {r["metric"]["job"] for r in res["result"]} >= {"redis", "postgres"}

    nodes = run_module(testbed_env, {"url": URL, "query": "count(kube_node_info)", "time": str(at)})
    assert nodes["result_type"] == "vector" and len(nodes["result"]) == 1
    assert nodes["scalar"] == float(direct(testbed, "query", query="count(kube_node_info)", time=at)
                                    ["result"][0]["value"][1]) >= 1


def test_scalar_results_and_rfc3339_time(testbed_env):
    res = run_module(testbed_env, {"url": URL, "query": "scalar(count(up))", "time": "2026-01-01T00:00:00Z"})
    assert res["result_type"] == "scalar" and res["result"][0]["value"][0] == 1767225600
    assert res["scalar"] is None  # no samples at that time: scalar() answers NaN, which is not a number
    now = run_module(testbed_env, {"url": URL, "query": "scalar(count(up))"})
    assert now["result_type"] == "scalar" and now["scalar"] >= 2


def test_range_query(testbed, testbed_env):
    end = time.time() - 5
    res = run_module(testbed_env, {"url": URL, "query": 'up{job="redis"}', "range_seconds": 60, "step": "15s",
                                   "end": str(end)})
    assert not res.get("failed"), res.get("msg")
    assert res["result_type"] == "matrix" and res["scalar"] is None
    assert res["end"] == pytest.approx(end) and res["end"] - res["start"] == pytest.approx(60)
    expected = direct(testbed, "query_range", query='up{job="redis"}', start=end - 60, end=end, step="15s")
    assert res["result"] == expected["result"]
    assert all(len(series["values"]) == 5 for series in res["result"])

    default_step = run_module(testbed_env, {"url": URL, "query": "up", "range_seconds": 3600})
    assert default_step["step"] == "4"  # at most 1000 points


def test_bad_query_fails_with_prometheus_error(testbed_env):
    res = run_module(testbed_env, {"url": URL, "query": "sum(rate(up[5m]"})
    assert res["failed"] is True and res["error_type"] == "bad_data"
    assert "parse error" in res["msg"] and "sum(rate(up[5m]" in res["msg"]
    unreachable = run_module(testbed_env, {"url": "http://127.0.0.1:1", "query": "up", "timeout": 3})
    assert unreachable["failed"] is True and "cannot reach Prometheus at http://127.0.0.1:1" in unreachable["msg"]
    both = run_module(testbed_env, {"url": URL, "query": "up", "time": "1", "range_seconds": 60})
    assert both["failed"] is True and "mutually exclusive" in both["msg"]


def test_bearer_token_is_not_logged(testbed_env):
    res = run_module(testbed_env, {"url": URL, "query": "vector(1)", "bearer_token": "tok-secret-123"})
    assert not res.get("failed") and res["scalar"] == 1.0
    assert "tok-secret-123" not in res["_stdout"]


# ------------------------------------------------------------------ wait_until
def test_wait_until_polls_until_satisfied(testbed_env):
    target = time.time() + 3
    started = time.monotonic()
    res = run_module(testbed_env, {"url": URL, "query": "time()",
                                   "wait_until": {"op": ">=", "value": target, "timeout": 30, "interval": 1}})
    assert not res.get("failed"), res.get("msg")
    assert res["wait"]["satisfied"] is True and res["wait"]["attempts"] >= 2
    assert res["scalar"] >= target and time.monotonic() - started < 30


def test_wait_until_times_out(testbed_env):
    cond = {"op": ">", "value": 1, "timeout": 3, "interval": 1}
    res = run_module(testbed_env, {"url": URL, "query": "vector(0)", "wait_until": cond})
    assert res["failed"] is True and "did not satisfy scalar > 1.0 within 3.0s" in res["msg"]
    assert res["wait"]["satisfied"] is False and res["wait"]["attempts"] >= 3 and res["wait"]["last_scalar"] == 0.0

    report = run_module(testbed_env, {"url": URL, "query": "vector(0)",
                                      "wait_until": dict(cond, fail_on_timeout=False)})
    assert not report.get("failed") and report["wait"]["satisfied"] is False

    absent = run_module(testbed_env, {"url": URL, "query": "up{job=\"no-such-job\"}",
                                      "wait_until": dict(cond, op="<", timeout=1)})
    assert absent["failed"] is True and "no single sample" in absent["msg"]


def test_wait_until_in_check_mode_evaluates_once(testbed_env):
    started = time.monotonic()
    res = run_module(testbed_env, {"url": URL, "query": "vector(0)",
                                   "wait_until": {"op": ">", "value": 1, "timeout": 60, "interval": 5}}, check=True)
    assert not res.get("failed") and res["wait"] == {"satisfied": False, "attempts": 1, "elapsed_s": res["wait"]
                                                     ["elapsed_s"], "op": ">", "value": 1.0, "last_scalar": 0.0}
    assert time.monotonic() - started < 20
