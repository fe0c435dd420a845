"""certmanager_certificate_info and certmanager_certificate_renew against the cert-manager
v1.21 CRDs of the test bed's API server.

cert-manager's controller does not run in the test bed. The tests create Issuers,
Certificates, CertificateRequests, Orders and Challenges in a namespace of their own (and
one ClusterIssuer) and write their statuses through the status subresource. For renewals
the test bed's simulator stands in for the issuing controller (docs/development.md): a
Certificate with Issuing=True gets the request `<name>-<revision+1>` within one 2-second
cycle, issued when the issuer is Ready, failed with the issuer's message otherwise.

The modules run through ansible-playbook with the runner's kubeconfig. Writes are checked
with independent reads as admin and with the API server's audit log of the runner's
requests (what the module itself wrote, whatever the stand-in did afterwards).
"""
from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import module_runner
import pytest
import yaml
from kubernetes import config, dynamic
from kubernetes.dynamic.exceptions import NotFoundError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import demo  # noqa: E402  (its Kube: the fault labels the closed-loop tests use)

MODULES = ["certmanager_certificate_info", "certmanager_certificate_renew"]
KUBECONFIG = "{{ lookup('env', 'OCTOLLM_RUNNER_KUBECONFIG') }}"
CM, ACME = "cert-manager.io/v1", "acme.cert-manager.io/v1"
RUNNER = "system:serviceaccount:octollm-system:octollm-runner"
RATE_LIMITED = ('Failed to wait for order resource "expiring-2-1" to become ready: order is in "errored" state: '
                "429 urn:ietf:params:acme:error:rateLimited: too many certificates already issued")

pytestmark = pytest.mark.testbed


# ------------------------------------------------------------------ helpers
def run_tasks(env, tasks, group_defaults=None):
    """Run tasks [(module, args, check_mode)] in one playbook; returns their results."""
    return module_runner.run_tasks(env, tasks, {"group/octollm.alert_response.k8s": group_defaults}
                                   if group_defaults else None, diff=True)


def run_module(env, module, args, check=False, group_defaults=None):
    return run_tasks(env, [(module, args, check)], group_defaults)[0]


class PausedPlaybook:
    """A one-task playbook started ahead of time that waits for a go file, so that several
    of them run their task at (nearly) the same moment, without ansible-playbook's start-up."""

    def __init__(self, env, go, label, task):
        module, args, check = task
        ready = Path(f"{go}.{label}.ready")
        play = {"hosts": "localhost", "gather_facts": False, "tasks": [
            {"name": "ready", "ansible.builtin.file": {"path": str(ready), "state": "touch", "mode": "0600"}},
            {"name": "wait for the test", "ansible.builtin.stat": {"path": str(go)}, "register": "go",
             "until": "go.stat.exists", "retries": 1200, "delay": 0},
            {"name": "under test", f"octollm.alert_response.{module}": args, "check_mode": check,
             "ignore_errors": True}]}
        path = Path(f"{go}.{label}.yml")
        path.write_text(yaml.safe_dump([play]))
        self.proc = subprocess.Popen(["ansible-playbook", str(path)], cwd=REPO, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"))
        eventually("the playbook to start", ready.exists, timeout=60, interval=0.05)

    def result(self):
        out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode in (0, 2), err[-3000:]
        return json.loads(out)["plays"][0]["tasks"][2]["hosts"]["localhost"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def runner_writes(testbed, namespace, name=None):
    """The runner's mutating requests in `namespace` (on `name`), from the audit log:
    (verb, resource, subresource, name, HTTP code)."""
    writes = []
    with open(testbed["OCTOLLM_AUDIT_LOG"], encoding="utf-8") as fh:
        for line in fh:
            if namespace not in line or "octollm-runner" not in line:
                continue
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if (event["user"]["username"] != RUNNER or event["verb"] in ("get", "list", "watch")
                    or ref.get("namespace") != namespace or (name and ref.get("name") != name)):
                continue
            writes.append((event["verb"], ref.get("resource"), ref.get("subresource"), ref.get("name"),
                           (event.get("responseStatus") or {}).get("code")))
    return writes


def eventually(what, fn, timeout=15.0, interval=0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def stamp(delta_days=0.0):
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=delta_days)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def cond(ctype, status, reason, message):
    return {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": stamp()}


class World:
    """cert-manager objects in a throw-away namespace, written as admin."""

    def __init__(self, kubeconfig):
        self.api = dynamic.DynamicClient(config.new_client_from_config(config_file=kubeconfig))
        self.ns = f"octollm-test-cm-{secrets.token_hex(4)}"
        self.cluster_issuer = f"octollm-test-ca-{secrets.token_hex(4)}"
        self.api.resources.get(api_version="v1", kind="Namespace").create(
            body={"metadata": {"name": self.ns}})

    def res(self, kind, api_version=CM):
        return self.api.resources.get(api_version=api_version, kind=kind)

    def create(self, kind, name, spec, status=None, api_version=CM, namespaced=True, metadata=None):
        res = self.res(kind, api_version)
        meta = dict(metadata or {}, name=name)
        obj = res.create(body={"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec},
                         namespace=self.ns if namespaced else None).to_dict()
        if status is not None:
            obj["status"] = status
            obj = res.status.replace(body=obj, namespace=self.ns if namespaced else None).to_dict()
        return obj

    def get(self, kind, name, api_version=CM):
        return self.res(kind, api_version).get(name=name, namespace=self.ns).to_dict()

    def names(self, kind):
        return {item.metadata.name for item in self.res(kind).get(namespace=self.ns).items}

    def certificate(self, name, issuer_ref, status=None):
        return self.create("Certificate", name, {"secretName": name, "dnsNames": [f"{name}.octollm.example"],
                                                 "issuerRef": issuer_ref}, status)

    def request(self, name, cert, revision=None, status=None, owned=True):
        annotations = {"cert-manager.io/certificate-name": cert["metadata"]["name"]}
        if revision is not None:
            annotations["cert-manager.io/certificate-revision"] = str(revision)
        meta = {"annotations": annotations}
        if owned:
            meta["ownerReferences"] = [{"apiVersion": CM, "kind": "Certificate", "name": cert["metadata"]["name"],
                                        "uid": cert["metadata"]["uid"], "controller": True,
                                        "blockOwnerDeletion": True}]
        spec = {"request": base64.b64encode(b"not a real CSR").decode(), "issuerRef": cert["spec"]["issuerRef"]}
        return self.create("CertificateRequest", name, spec, status, metadata=meta)

    def owner(self, obj):
        return {"ownerReferences": [{"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                                     "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
                                     "controller": True}]}

    def issuing(self):
        return [c["metadata"]["name"] for c in self.res("Certificate").get(namespace=self.ns).to_dict()["items"]
                if any(x["type"] == "Issuing" and x["status"] == "True" for x in (c.get("status") or {})
                       .get("conditions") or [])]

    def delete(self):
        # let the stand-in controller finish with our certificates first: deleting them under
        # it would make its cycle fail for everybody's certificates
        deadline = time.monotonic() + 15
        while self.issuing() and time.monotonic() < deadline:
            time.sleep(0.5)
        try:
            self.res("ClusterIssuer").delete(name=self.cluster_issuer)
        except NotFoundError:
            pass
        self.api.resources.get(api_version="v1", kind="Namespace").delete(name=self.ns)


@pytest.fixture(scope="module")
def world(testbed):
    """Issuers, three Certificates and their requests/orders/challenges."""
    w = World(testbed["KUBECONFIG"])
    try:
        build_world(w)
        yield w
    finally:
        w.delete()


def build_world(w):
    w.create("ClusterIssuer", w.cluster_issuer, {"ca": {"secretName": "octollm-test-ca"}},
             {"conditions": [cond("Ready", "True", "KeyPairVerified", "Signing CA verified")]}, namespaced=False)
    w.create("Issuer", "acme-staging", {"acme": {
        "server": "https://acme-staging-v02.api.letsencrypt.org/directory", "privateKeySecretRef": {"name": "k"},
        "solvers": [{"http01": {"ingress": {"ingressClassName": "nginx"}}}]}},
        {"conditions": [cond("Ready", "False", "ErrRegisterACMEAccount", "Failed to register ACME account: 429")]})
    acme_ref = {"name": "acme-staging", "kind": "Issuer", "group": "cert-manager.io"}
    w.expiring = w.certificate("expiring", acme_ref, {
        "notBefore": stamp(-87), "notAfter": stamp(3), "renewalTime": stamp(-27), "revision": 2,
        "failedIssuanceAttempts": 2, "lastFailureTime": stamp(-0.1),
        "conditions": [cond("Ready", "True", "Ready", "Certificate is up to date and has not expired"),
                       cond("Issuing", "False", "Failed", "The certificate request has failed to complete")]})
    w.healthy = w.certificate("healthy", {"name": w.cluster_issuer, "kind": "ClusterIssuer"}, {
        "notBefore": stamp(-30), "notAfter": stamp(60), "renewalTime": stamp(30), "revision": 1,
        "conditions": [cond("Ready", "True", "Ready", "Certificate is up to date and has not expired")]})
    w.never = w.certificate("never-issued", {"name": "missing-issuer"})
    approved = cond("Approved", "True", "cert-manager.io", "Certificate request has been approved by cert-manager.io")
    w.request("expiring-1", w.expiring, 1, {"conditions": [approved, cond("Ready", "True", "Issued", "issued")]})
    failed = w.request("expiring-2", w.expiring, 2, {"failureTime": stamp(-0.1), "conditions": [
        approved, cond("Ready", "False", "Failed", RATE_LIMITED)]})
    w.request("manual-denied", w.expiring, None, owned=False, status={"conditions": [
        cond("Denied", "True", "policy", "violates policy"), cond("Ready", "False", "Denied", "denied")]})
    w.request("healthy-1", w.healthy, 1, {"conditions": [approved, cond("Ready", "True", "Issued", "issued")]})
    issuer_ref = {"name": "acme-staging", "kind": "Issuer"}
    order = w.create("Order", "expiring-2-1", {"request": "Y3Ny", "issuerRef": issuer_ref},
                     {"state": "errored", "reason": "429 urn:ietf:params:acme:error:rateLimited"},
                     api_version=ACME, metadata=w.owner(failed))
    w.create("Challenge", "expiring-2-1-0", {
        "authorizationURL": "https://acme.invalid/authz/1", "dnsName": "expiring.octollm.example",
        "issuerRef": issuer_ref, "key": "k", "solver": {"http01": {"ingress": {}}}, "token": "t",
        "type": "HTTP-01", "url": "https://acme.invalid/chall/1"},
        {"state": "invalid", "reason": "Waiting for HTTP-01 challenge propagation: wrong status code '404'",
         "presented": True, "processing": False}, api_version=ACME, metadata=w.owner(order))


def fresh_certificate(world, prefix, status=None):
    name = f"{prefix}-{secrets.token_hex(3)}"
    return world.certificate(name, {"name": world.cluster_issuer, "kind": "ClusterIssuer"}, status or {
        "notBefore": stamp(-30), "notAfter": stamp(5), "revision": 4,
        "conditions": [cond("Ready", "True", "Ready", "Certificate is up to date and has not expired")]})


# ------------------------------------------------------------------ docs
@pytest.mark.parametrize("module", MODULES)
def test_docs_render_and_match_the_argument_spec(testbed_env, module):
    name = f"octollm.alert_response.{module}"
    proc = subprocess.run(["ansible-doc", name], check=False, cwd=REPO, env=testbed_env, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0 and "kubeconfig" in proc.stdout, proc.stderr
    proc = subprocess.run(["ansible-doc", "--json", name], check=False, cwd=REPO, env=testbed_env, text=True,
                          capture_output=True, timeout=120)
    options = json.loads(proc.stdout)[name]["doc"]["options"]
    spec = __import__(f"ansible_collections.octollm.alert_response.plugins.modules.{module}",
                      fromlist=["x"]).argument_spec()
    assert sorted(options) == sorted(spec)
    for key, opt in spec.items():
        assert options[key].get("type", "str") == opt.get("type", "str"), key
        if opt.get("default") is not None:
            assert options[key].get("default") == opt["default"], key


# ------------------------------------------------------------------ info
def test_info_one_certificate_with_issuer_requests_and_acme(testbed_env, world):
    res = run_module(testbed_env, "certmanager_certificate_info",
                     {"kubeconfig": KUBECONFIG, "name": "expiring", "namespace": world.ns})
    assert not res.get("failed"), res.get("msg")
    [cert] = res["certificates"]
    checked = dt.datetime.fromisoformat(res["checked_at"].replace("Z", "+00:00"))
    not_after = dt.datetime.fromisoformat(cert["not_after"].replace("Z", "+00:00"))
    assert cert["days_left"] == pytest.approx((not_after - checked).total_seconds() / 86400, abs=0.001)
    assert 2.99 < cert["days_left"] <= 3.0 and isinstance(cert["days_left"], float)
    assert cert["ready"]["status"] == "True" and cert["issuing"]["reason"] == "Failed"
    assert cert["revision"] == 2 and cert["failed_issuance_attempts"] == 2 and cert["renewal_time"]
    issuer = cert["issuer"]
    assert (issuer["kind"], issuer["namespace"], issuer["found"], issuer["type"]) == ("Issuer", world.ns, True, "acme")
    assert issuer["ready"]["status"] == "False" and issuer["ready"]["reason"] == "ErrRegisterACMEAccount"
    assert "staging" in issuer["acme_server"]
    assert cert["requests_total"] == 3
    assert [r["name"] for r in cert["requests"]] == ["expiring-2", "expiring-1", "manual-denied"]
    failed, issued, denied = cert["requests"]
    assert failed["state"] == "failed" and "rateLimited" in failed["failure_reason"]
    assert failed["approved"]["status"] == "True" and failed["failure_time"] and failed["revision"] == 2
    [order] = failed["orders"]
    assert order["state"] == "errored" and "rateLimited" in order["reason"]
    [challenge] = order["challenges"]
    assert (challenge["type"], challenge["state"], challenge["presented"]) == ("HTTP-01", "invalid", True)
    assert "404" in challenge["reason"]
    assert issued["state"] == "issued" and issued["failure_reason"] is None and issued["orders"] == []
    assert denied["state"] == "denied" and denied["failure_reason"] == "policy: violates policy"
    assert denied["revision"] is None and denied["denied"]["status"] == "True"


def test_info_lists_sorts_and_filters(testbed_env, world):
    res = run_module(testbed_env, "certmanager_certificate_info",
                     {"namespace": world.ns, "requests_limit": 1, "acme_details": False},
                     group_defaults={"kubeconfig": KUBECONFIG})
    assert not res.get("failed"), res.get("msg")
    names = [c["name"] for c in res["certificates"]
             if not c["name"].startswith(("renew-", "twice-", "failing-", "timeout-"))]
    assert names == ["expiring", "healthy", "never-issued"]  # soonest first, never issued last
    by_name = {c["name"]: c for c in res["certificates"]}
    assert [r["name"] for r in by_name["expiring"]["requests"]] == ["expiring-2"]
    assert by_name["expiring"]["requests_total"] == 3 and "orders" not in by_name["expiring"]["requests"][0]
    healthy = by_name["healthy"]
    assert healthy["issuer"]["kind"] == "ClusterIssuer" and healthy["issuer"]["namespace"] is None
    assert healthy["issuer"]["found"] is True and healthy["issuer"]["ready"]["status"] == "True"
    assert [r["name"] for r in healthy["requests"]] == ["healthy-1"]  # not the expiring ones
    never = by_name["never-issued"]
    assert never["days_left"] is None and never["issuer"]["found"] is False and never["requests_total"] == 0

    soon = run_module(testbed_env, "certmanager_certificate_info", {"kubeconfig": KUBECONFIG, "max_days_left": 7})
    assert {(c["namespace"], c["name"]) for c in soon["certificates"]} >= {(world.ns, "expiring")}
    assert all(c["days_left"] <= 7 for c in soon["certificates"])
    everywhere = run_module(testbed_env, "certmanager_certificate_info",
                            {"kubeconfig": KUBECONFIG, "acme_details": False})
    assert ("octollm-prod", "api-gateway-tls") in {(c["namespace"], c["name"]) for c in everywhere["certificates"]}
    missing = run_module(testbed_env, "certmanager_certificate_info",
                         {"kubeconfig": KUBECONFIG, "name": "nope", "namespace": world.ns})
    assert not missing.get("failed") and missing["certificates"] == []


# ------------------------------------------------------------------ renew
def test_renew_check_then_real_waits_for_the_issued_request(testbed, testbed_env, world):
    cert = fresh_certificate(world, "renew")
    name = cert["metadata"]["name"]
    requests_before = world.names("CertificateRequest")
    args = {"kubeconfig": KUBECONFIG, "name": name, "namespace": world.ns, "wait_timeout": 30, "wait_sleep": 0.5}

    check = run_module(testbed_env, "certmanager_certificate_renew", args, check=True)
    assert check["changed"] is True and not check.get("failed"), check.get("msg")
    assert check["issuing"]["reason"] == "ManuallyTriggered" and check["diff"]["before"] == {"issuing": None}
    assert check["certificate_request"] is None
    time.sleep(2.5)  # a full cycle of the stand-in controller: it must have nothing to do
    assert runner_writes(testbed, world.ns, name) == []
    current = world.get("Certificate", name)
    assert current["status"]["revision"] == 4 and all(c["type"] != "Issuing" for c in current["status"]["conditions"])
    assert world.names("CertificateRequest") == requests_before

    real = run_module(testbed_env, "certmanager_certificate_renew", args)
    assert real["changed"] is True and real["already_issuing"] is False and real["revision"] == 4, real.get("msg")
    assert real["issuing"]["message"] == "Certificate re-issuance manually triggered"
    assert real["certificate_request"]["name"] == f"{name}-5" and real["certificate_request"]["revision"] == 5
    # what the module wrote: one update of the status subresource, nothing deleted anywhere
    assert runner_writes(testbed, world.ns, name) == [("update", "certificates", "status", name, 200)]
    assert [w for w in runner_writes(testbed, world.ns) if w[0] != "update"] == []
    assert requests_before <= world.names("CertificateRequest")

    renewed = eventually("the stand-in to issue revision 5",
                         lambda: (c := world.get("Certificate", name))["status"].get("revision") == 5 and c)
    assert all(c["type"] != "Issuing" for c in renewed["status"]["conditions"])
    info = run_module(testbed_env, "certmanager_certificate_info",
                      {"kubeconfig": KUBECONFIG, "name": name, "namespace": world.ns})
    [after] = info["certificates"]
    assert after["revision"] == 5 and after["days_left"] > 60 and after["issuing"] is None
    assert after["requests"][0]["name"] == f"{name}-5" and after["requests"][0]["state"] == "issued"


def test_renew_twice_at_once_triggers_once(testbed, testbed_env, world, tmp_path):
    """Two runs released at the same moment (two runners, or a retried task): one sets the
    Issuing condition, the other finds the certificate already issuing -- it read it after
    the first write, or its own write lost on resourceVersion and the re-read shows it --
    and reports unchanged without writing. A check-mode run alongside writes nothing.

    The test bed's stand-in controller finishes an issuance within its 2-second cycle; when
    the second run happens to read after that, it rightly starts a new renewal: that
    attempt is repeated."""
    for attempt in range(6):
        cert = fresh_certificate(world, "twice")
        name = cert["metadata"]["name"]
        args = {"kubeconfig": KUBECONFIG, "name": name, "namespace": world.ns, "wait": False}
        go = tmp_path / f"go-{attempt}"
        with PausedPlaybook(testbed_env, go, "a", ("certmanager_certificate_renew", args, False)) as run_a, \
                PausedPlaybook(testbed_env, go, "b", ("certmanager_certificate_renew", args, False)) as run_b, \
                PausedPlaybook(testbed_env, go, "check", ("certmanager_certificate_renew", args, True)) as run_c:
            go.touch()
            results = [run_a.result(), run_b.result()]
            check = run_c.result()
        assert not any(r.get("failed") for r in results + [check]), [r.get("msg") for r in results + [check]]
        updates = [w for w in runner_writes(testbed, world.ns, name) if w[4] == 200]
        if sorted(r["changed"] for r in results) == [False, True]:
            break
        assert len(updates) == 2  # both triggered: the second after the stand-in had finished
    else:
        pytest.fail("the two runs never overlapped")
    winner, loser = sorted(results, key=lambda r: not r["changed"])
    assert winner["already_issuing"] is False and winner["issuing"]["reason"] == "ManuallyTriggered"
    assert loser["already_issuing"] is True and loser["issuing"] == winner["issuing"]
    assert loser["certificate_request"] is None
    assert updates == [("update", "certificates", "status", name, 200)]  # one write; check mode wrote nothing


def test_renew_with_an_issuer_that_is_not_ready(testbed_env, world):
    """The stand-in fails the request with the issuer's message, as cert-manager does; the
    info module then shows why."""
    cert = world.certificate(f"failing-{secrets.token_hex(3)}", {"name": "acme-staging", "kind": "Issuer"}, {
        "notBefore": stamp(-85), "notAfter": stamp(5), "revision": 1,
        "conditions": [cond("Ready", "True", "Ready", "up to date")]})
    name = cert["metadata"]["name"]
    res = run_module(testbed_env, "certmanager_certificate_renew", {
        "kubeconfig": KUBECONFIG, "name": name, "namespace": world.ns, "wait_timeout": 30, "wait_sleep": 0.5})
    assert res["changed"] is True and res["certificate_request"]["name"] == f"{name}-2", res.get("msg")

    def failed():
        info = run_module(testbed_env, "certmanager_certificate_info",
                          {"kubeconfig": KUBECONFIG, "name": name, "namespace": world.ns})["certificates"][0]
        return info["requests"] and info["requests"][0]["state"] == "failed" and info

    info = eventually("the request to fail", failed, timeout=20)
    assert "Failed to register ACME account: 429" in info["requests"][0]["failure_reason"]
    assert info["issuing"]["status"] == "False" and info["issuing"]["reason"] == "Failed"
    assert info["failed_issuance_attempts"] == 1 and info["revision"] == 1
    assert info["issuer"]["ready"]["reason"] == "ErrRegisterACMEAccount"


@contextlib.contextmanager
def certmanager_stopped(env):
    """cert-manager's controller pod not Ready (the kwok fault label) for the block; its pods
    are replaced afterwards, as a restart would."""
    kube = demo.Kube(env)
    spec = kube.apps.read_namespaced_deployment("cert-manager", "cert-manager").spec
    selector = ",".join(f"{k}={v}" for k, v in spec.selector.match_labels.items())

    def ready():
        return kube.apps.read_namespaced_deployment("cert-manager", "cert-manager").status.ready_replicas or 0

    try:
        kube.label_pods("cert-manager", selector, {"faults.octollm.io/not-ready": "true"})
        eventually("cert-manager to have no ready pod", lambda: ready() == 0, timeout=30)
        yield
    finally:
        kube.core.delete_collection_namespaced_pod("cert-manager", label_selector=selector)
        eventually("cert-manager to be ready again", lambda: ready() >= 1, timeout=60)


def test_renew_wait_timeout_and_missing_certificate(testbed_env, world):
    """With cert-manager's controller down no request appears: the module says so and names
    the controller, after writing the Issuing condition (changed)."""
    cert = fresh_certificate(world, "timeout")
    with certmanager_stopped(testbed_env):
        res = run_module(testbed_env, "certmanager_certificate_renew", {
            "kubeconfig": KUBECONFIG, "name": cert["metadata"]["name"], "namespace": world.ns,
            "wait_timeout": 2, "wait_sleep": 0.5})
    assert res["failed"] is True and res["changed"] is True
    assert "no CertificateRequest with a revision above 4 appeared within 2s" in res["msg"]
    assert "cert-manager" in res["msg"]
    missing = run_module(testbed_env, "certmanager_certificate_renew",
                         {"kubeconfig": KUBECONFIG, "name": "nope", "namespace": world.ns})
    assert missing["failed"] is True and f"Certificate {world.ns}/nope not found" in missing["msg"]
