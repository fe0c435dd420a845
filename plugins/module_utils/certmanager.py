# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cert-manager for the alert-response modules: read Certificates with everything that
explains their state, and trigger a renewal the way ``cmctl renew`` does.

Connection and options come from kubernetes.core (``k8s_auth_options`` doc fragment,
``AUTH_ARG_SPEC`` and ``get_api_client``), so ``module_defaults:
group/octollm.alert_response.k8s`` configures these modules like kubernetes.core's.

Nothing here deletes a CertificateRequest: the runbook's renewal trigger deletes every
request in the namespace (runbook defect 7.16); setting the Issuing condition asks
cert-manager for exactly one new request for exactly one certificate.
"""
from __future__ import annotations

import copy
import datetime as dt
import time

try:
    from kubernetes.dynamic.exceptions import ConflictError, DynamicApiError, NotFoundError, ResourceNotFoundError
except ImportError:  # pragma: no cover - AnsibleK8SModule reports the missing library first
    ConflictError = DynamicApiError = NotFoundError = ResourceNotFoundError = None

CERT_API = "cert-manager.io/v1"
ACME_API = "acme.cert-manager.io/v1"
CERT_GROUP = "cert-manager.io"
NAME_ANNOTATION = "cert-manager.io/certificate-name"
REVISION_ANNOTATION = "cert-manager.io/certificate-revision"

# What `cmctl renew` writes (cert-manager's cmd/ctl/pkg/renew).
ISSUING_REASON = "ManuallyTriggered"
ISSUING_MESSAGE = "Certificate re-issuance manually triggered"

REQUEST_CONDITIONS = ("Ready", "Approved", "Denied", "InvalidRequest")


class CertManagerError(Exception):
    """A failure with a message that names the object and the next step."""


def api_message(exc):
    """The API server's own message of a DynamicApiError (not the whole HTTP dump)."""
    try:
        return exc.summary()
    except Exception:  # pragma: no cover - summary() parses the body
        return str(getattr(exc, "reason", exc))


def utcnow():
    return dt.datetime.now(dt.timezone.utc)


def parse_time(value):
    if not value:
        return None
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def rfc3339(when):
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def days_left(not_after, now):
    """Days (float) until notAfter; negative once expired; None when never issued."""
    end = parse_time(not_after)
    return None if end is None else round((end - now).total_seconds() / 86400.0, 4)


def condition(obj, ctype):
    """One status condition as {status, reason, message, last_transition_time}, or None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return {"status": cond.get("status"), "reason": cond.get("reason"), "message": cond.get("message"),
                    "last_transition_time": cond.get("lastTransitionTime")}
    return None


def is_true(cond):
    return bool(cond) and cond.get("status") == "True"


def revision_of(request):
    value = ((request.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def owned_by(obj, uid):
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def request_summary(request):
    """A CertificateRequest: its conditions, a one-word state and why it failed."""
    meta = request["metadata"]
    conds = {ctype: condition(request, ctype) for ctype in REQUEST_CONDITIONS}
    ready = conds["Ready"]
    if is_true(conds["Denied"]):
        state, failure = "denied", conds["Denied"]
    elif is_true(conds["InvalidRequest"]):
        state, failure = "invalid", conds["InvalidRequest"]
    elif is_true(ready):
        state, failure = "issued", None
    elif ready and ready.get("reason") in ("Failed", "Denied", "InvalidRequest"):
        state, failure = "failed", ready
    else:
        state, failure = "pending", None
    return {
        "name": meta["name"], "namespace": meta.get("namespace"), "uid": meta.get("uid"),
        "revision": revision_of(request), "created": meta.get("creationTimestamp"),
        "state": state,
        "failure_reason": ("%s: %s" % (failure.get("reason"), failure.get("message"))) if failure else None,
        "failure_time": (request.get("status") or {}).get("failureTime"),
        "ready": ready, "approved": conds["Approved"], "denied": conds["Denied"],
        "invalid_request": conds["InvalidRequest"],
    }


def issuer_type(spec):
    for kind in ("acme", "ca", "selfSigned", "vault", "venafi"):
        if kind in (spec or {}):
            return kind
    return None


class CertManager:
    """cert-manager objects through kubernetes.core's client (a K8SClient)."""

    def __init__(self, client):
        self.client = client
        self._resources = {}
        self._lists = {}
        self._issuers = {}

    # ------------------------------------------------------------ plumbing
    def resource(self, kind, api_version=CERT_API, required=True):
        key = (kind, api_version)
        if key not in self._resources:
            try:
                self._resources[key] = self.client.resource(kind, api_version)
            except ResourceNotFoundError:
                if required:
                    raise CertManagerError("The API server has no %s %s: cert-manager's CRDs are not installed "
                                           "(install cert-manager, or point kubeconfig at the right cluster)"
                                           % (api_version, kind))
                self._resources[key] = None
        return self._resources[key]

    def _list(self, kind, namespace, api_version=CERT_API, cached=True):
        """Objects of a kind in a namespace (all namespaces when None), as dicts."""
        key = (kind, namespace)
        if cached and key in self._lists:
            return self._lists[key]
        res = self.resource(kind, api_version, required=api_version == CERT_API)
        items = []
        if res is not None:
            try:
                items = [item.to_dict() for item in self.client.get(res, namespace=namespace).items]
            except DynamicApiError as exc:
                raise CertManagerError("Failed to list %s in %s: %s; the identity in kubeconfig needs list on "
                                       "%s" % (kind, namespace or "all namespaces", api_message(exc), res.group
                                               or api_version))
        self._lists[key] = items
        return items

    def get_certificate(self, name, namespace):
        """The Certificate as a dict, or None when it does not exist."""
        try:
            return self.client.get(self.resource("Certificate"), name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None
        except DynamicApiError as exc:
            raise CertManagerError("Failed to read Certificate %s/%s: %s; the identity in kubeconfig needs get on "
                                   "certificates.cert-manager.io" % (namespace, name, api_message(exc)))

    def list_certificates(self, namespace=None):
        return self._list("Certificate", namespace)

    # ------------------------------------------------------------ related objects
    def issuer(self, ref, namespace):
        """Summary of the certificate's Issuer/ClusterIssuer with its Ready condition."""
        kind = ref.get("kind") or "Issuer"
        group = ref.get("group") or CERT_GROUP
        out = {"kind": kind, "name": ref.get("name"), "group": group,
               "namespace": namespace if kind == "Issuer" else None,
               "found": None, "ready": None, "type": None, "acme_server": None}
        if group != CERT_GROUP:
            # An external issuer (its own CRD and controller): report the reference only.
            return out
        key = (kind, out["namespace"], out["name"])
        if key not in self._issuers:
            try:
                obj = self.client.get(self.resource(kind), name=out["name"], namespace=out["namespace"]).to_dict()
            except NotFoundError:
                obj = None
            except DynamicApiError as exc:
                raise CertManagerError("Failed to read %s %s: %s; the identity in kubeconfig needs get on %ss"
                                       % (kind, out["name"], api_message(exc), kind.lower()))
            self._issuers[key] = obj
        obj = self._issuers[key]
        out["found"] = obj is not None
        if obj is not None:
            spec = obj.get("spec") or {}
            out.update(ready=condition(obj, "Ready"), type=issuer_type(spec),
                       acme_server=(spec.get("acme") or {}).get("server"))
        return out

    def requests_for(self, cert, cached=True):
        """The certificate's CertificateRequests (owner reference, or the name annotation
        cert-manager sets), newest revision first."""
        meta = cert["metadata"]
        mine = [req for req in self._list("CertificateRequest", meta["namespace"], cached=cached)
                if owned_by(req, meta["uid"])
                or ((req["metadata"].get("annotations") or {}).get(NAME_ANNOTATION) == meta["name"])]
        return sorted(mine, key=lambda r: (revision_of(r) or 0, r["metadata"].get("creationTimestamp") or ""),
                      reverse=True)

    def acme_for(self, request):
        """Orders owned by the request, each with its Challenges; [] without ACME CRDs."""
        namespace = request["metadata"]["namespace"]
        orders = []
        for order in self._list("Order", namespace, ACME_API):
            if not owned_by(order, request["metadata"]["uid"]):
                continue
            status = order.get("status") or {}
            challenges = [{
                "name": ch["metadata"]["name"], "type": (ch.get("spec") or {}).get("type"),
                "dns_name": (ch.get("spec") or {}).get("dnsName"), "state": (ch.get("status") or {}).get("state"),
                "reason": (ch.get("status") or {}).get("reason"),
                "presented": (ch.get("status") or {}).get("presented"),
                "processing": (ch.get("status") or {}).get("processing"),
            } for ch in self._list("Challenge", namespace, ACME_API) if owned_by(ch, order["metadata"]["uid"])]
            orders.append({"name": order["metadata"]["name"], "state": status.get("state"),
                           "reason": status.get("reason"), "failure_time": status.get("failureTime"),
                           "challenges": challenges})
        return orders

    # ------------------------------------------------------------ the summary
    def summarize(self, cert, now, requests_limit=10, acme=True):
        meta, spec, status = cert["metadata"], cert.get("spec") or {}, cert.get("status") or {}
        requests = self.requests_for(cert)
        shown = []
        for req in requests[:requests_limit]:
            item = request_summary(req)
            if acme:
                item["orders"] = self.acme_for(req)
            shown.append(item)
        ref = spec.get("issuerRef") or {}
        return {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid"),
            "dns_names": spec.get("dnsNames") or [], "common_name": spec.get("commonName"),
            "secret_name": spec.get("secretName"),
            "issuer_ref": {"name": ref.get("name"), "kind": ref.get("kind") or "Issuer",
                           "group": ref.get("group") or CERT_GROUP},
            "issuer": self.issuer(ref, meta["namespace"]),
            "not_before": status.get("notBefore"), "not_after": status.get("notAfter"),
            "days_left": days_left(status.get("notAfter"), now), "renewal_time": status.get("renewalTime"),
            "revision": status.get("revision"),
            "ready": condition(cert, "Ready"), "issuing": condition(cert, "Issuing"),
            "failed_issuance_attempts": status.get("failedIssuanceAttempts"),
            "last_failure_time": status.get("lastFailureTime"),
            "requests": shown, "requests_total": len(requests),
        }

    # ------------------------------------------------------------ renewal
    @staticmethod
    def with_issuing(cert, now):
        """A copy of the Certificate with the Issuing condition `cmctl renew` sets."""
        body = copy.deepcopy(cert)
        status = body.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Issuing"]
        conditions.append({"type": "Issuing", "status": "True", "reason": ISSUING_REASON,
                           "message": ISSUING_MESSAGE, "lastTransitionTime": rfc3339(now),
                           "observedGeneration": body["metadata"].get("generation")})
        status["conditions"] = conditions
        return body

    def set_issuing(self, cert, attempts=3):
        """Write the Issuing condition on the status subresource (optimistic locking on
        resourceVersion, as cmctl's UpdateStatus). Returns (updated cert, changed)."""
        meta = cert["metadata"]
        status_api = self.resource("Certificate").subresources["status"]
        for attempt in range(attempts):  # noqa: B007 - a bounded retry on conflicts
            if is_true(condition(cert, "Issuing")):
                return cert, False
            body = self.with_issuing(cert, utcnow())
            try:
                updated = self.client.replace(status_api, body, name=meta["name"], namespace=meta["namespace"])
                return updated.to_dict(), True
            except ConflictError:
                cert = self.get_certificate(meta["name"], meta["namespace"])
                if cert is None:
                    break
            except DynamicApiError as exc:
                raise CertManagerError("Failed to set the Issuing condition on Certificate %s/%s: %s; the identity "
                                       "in kubeconfig needs update on certificates/status"
                                       % (meta["namespace"], meta["name"], api_message(exc)))
        raise CertManagerError("Certificate %s/%s kept changing (or vanished) while setting the Issuing condition; "
                               "run the task again" % (meta["namespace"], meta["name"]))

    def wait_for_request(self, cert, known, revision, timeout, sleep=1.0):
        """The first CertificateRequest of `cert` newer than `revision` (or, without a
        revision annotation, not among `known` names); None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for req in self.requests_for(cert, cached=False):
                rev = revision_of(req)
                if (rev is not None and rev > revision) or (rev is None and req["metadata"]["name"] not in known):
                    return req
            if time.monotonic() >= deadline:
                return None
            time.sleep(sleep)
