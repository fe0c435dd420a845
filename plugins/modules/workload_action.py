#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: workload_action
short_description: Restart, roll back, resize, re-image, scale a Deployment/StatefulSet or delete its pods
version_added: 0.1.0
description:
  - The runbook's workload remediations as one idempotent module with check mode and diff. Ask
    C(octollm.alert_response.guardrail) first; this module does not.
  - V(rollout_restart) stamps the pod template annotation C(kubectl.kubernetes.io/restartedAt), as
    C(kubectl rollout restart) does. With O(restarted_at) the stamp is that value and a second run with
    the same value changes nothing. An OrderedReady StatefulSet does not replace a pod that is not
    Ready, so the restart of one also deletes its unready pods (the controller recreates them).
  - V(rollout_undo) rolls a Deployment back like C(kubectl rollout undo) - the pod template of the
    previous revision (or O(to_revision)) replaces the current one and that ReplicaSet's annotations are
    copied - with an optimistic-concurrency test on the resourceVersion. With O(from_revision) it only
    rolls back while the Deployment is still at that revision, so a rerun never undoes the rollback.
  - V(set_resources) merges O(limits)/O(requests) into one container's resources (for example a memory
    limit raised from 512Mi to 1Gi).
  - V(set_image) sets one container's image (C(kubectl set image)).
  - V(scale) sets the replica count.
  - V(delete_pods) deletes the named pods of the workload so that its controller recreates them; names
    that are not pods of the workload are refused.
  - With O(wait) it waits until the rollout is complete and every pod is Ready (C(kubectl rollout status)).
options:
  kind:
    description: The kind of the workload.
    type: str
    choices: [Deployment, StatefulSet]
    default: Deployment
  namespace:
    description: Namespace of the workload.
    type: str
    required: true
  name:
    description: Name of the workload.
    type: str
    required: true
  action:
    description: What to do.
    type: str
    required: true
    choices: [rollout_restart, rollout_undo, set_resources, set_image, scale, delete_pods]
  container:
    description:
      - The container for V(set_resources) and V(set_image); may be omitted when the pod has one container.
    type: str
  image:
    description: The image for V(set_image).
    type: str
  limits:
    description: "Resource limits to set for V(set_resources), for example C({memory: 1Gi})."
    type: dict
  requests:
    description: Resource requests to set for V(set_resources).
    type: dict
  replicas:
    description: The replica count for V(scale).
    type: int
  to_revision:
    description: V(rollout_undo) to this revision; default the newest revision older than the current one.
    type: int
  from_revision:
    description: V(rollout_undo) only while the Deployment is at this revision (else report no change).
    type: int
  restarted_at:
    description:
      - The stamp for V(rollout_restart) (any string, usually an RFC 3339 time); default now. The same
        stamp twice is one restart.
    type: str
  pods:
    description: Names of the pods to delete for V(delete_pods).
    type: list
    elements: str
  wait:
    description: Wait until the rollout is complete and every pod is Ready (not in check mode).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait; on timeout the module fails, naming what is not ready yet.
    type: float
    default: 300
  wait_interval:
    description: Seconds between two reads while waiting.
    type: float
    default: 2
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Reads the workload, computes the change and reports C(changed) and the diff; writes nothing and
      does not wait.
  diff_mode:
    support: full
  platform:
    platforms: posix
  action_group:
    support: full
    membership: [octollm.alert_response.k8s]
requirements:
  - kubernetes >= 24.2.0
notes:
  - The identity needs get and patch on the workload, list on ReplicaSets (V(rollout_undo)) and pods, and
    delete on pods (V(delete_pods)).
seealso:
  - module: octollm.alert_response.guardrail
  - module: octollm.alert_response.workload_info
  - module: kubernetes.core.k8s_rollback
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Roll back the bad revision 7 (a rerun changes nothing once rolled back)
  octollm.alert_response.workload_action:
    namespace: octollm-prod
    name: api-gateway
    action: rollout_undo
    from_revision: 7
    wait: true
    wait_timeout: 300

- name: Raise the memory limit 512Mi -> 1Gi
  octollm.alert_response.workload_action:
    namespace: octollm-prod
    name: orchestrator
    action: set_resources
    container: orchestrator
    limits:
      memory: 1Gi
    wait: true

- name: Restart the dependency first
  octollm.alert_response.workload_action:
    kind: StatefulSet
    namespace: octollm-prod
    name: postgres
    action: rollout_restart
    restarted_at: "incident-42"
    wait: true

- name: Then delete the crashing pods
  octollm.alert_response.workload_action:
    namespace: octollm-prod
    name: orchestrator
    action: delete_pods
    pods: [orchestrator-7979d8c7b4-4cbpc]
"""

RETURN = r"""
msg:
  description: What was (or would be) done, or why nothing was.
  returned: always
  type: str
  sample: rolled Deployment octollm-prod/api-gateway back from revision 7 to the template of revision 6
before:
  description: The changed part before.
  returned: always
  type: dict
  sample: {revision: 7, images: ["ghcr.io/octollm/api-gateway:3.1.0"]}
after:
  description: The changed part after (what it would be in check mode).
  returned: always
  type: dict
  sample: {revision: 6, images: ["ghcr.io/octollm/api-gateway:3.0.2"]}
diff:
  description: Before and after, in diff mode (C(--diff)).
  returned: when diff mode is on
  type: dict
  sample: {before: {revision: 7}, after: {revision: 6}}
deleted:
  description: The pods deleted (V(delete_pods)), or the unready pods of an OrderedReady StatefulSet
    that V(rollout_restart) deleted (would delete, in check mode).
  returned: when O(action=delete_pods), or when a StatefulSet restart deleted pods
  type: list
  elements: str
  sample: [orchestrator-7979d8c7b4-4cbpc]
workload:
  description: Replicas, revision and rollout state after the action (and the wait).
  returned: always
  type: dict
  sample: {replicas: {desired: 2, ready: 2, updated: 2, available: 2}, current_revision: 8, rollout_complete: true}
wait:
  description: How the wait went.
  returned: when O(wait) is set and something changed
  type: dict
  sample: {healthy: true, elapsed_s: 12.4, reason: "2 pod(s) Ready, rollout complete"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import (
    ApiException,
    ConnectionProblem,
    api_error,
    auth_spec,
    clients,
    unreachable,
)
from ansible_collections.octollm.alert_response.plugins.module_utils.workloads import (
    ACTIONS,
    Actions,
    Evidence,
    Workload,
    WorkloadError,
    revisions_with_templates,
    wait_healthy,
)

REQUIRED = {"set_image": ["image"], "scale": ["replicas"], "delete_pods": ["pods"]}


def argument_spec():
    spec = auth_spec()
    spec.update(
        kind=dict(type="str", choices=["Deployment", "StatefulSet"], default="Deployment"),
        namespace=dict(type="str", required=True),
        name=dict(type="str", required=True),
        action=dict(type="str", required=True, choices=list(ACTIONS)),
        container=dict(type="str"),
        image=dict(type="str"),
        limits=dict(type="dict"),
        requests=dict(type="dict"),
        replicas=dict(type="int"),
        to_revision=dict(type="int"),
        from_revision=dict(type="int"),
        restarted_at=dict(type="str"),
        pods=dict(type="list", elements="str"),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="float", default=300),
        wait_interval=dict(type="float", default=2),
    )
    return spec


def plan(module, w):
    p, act = module.params, Actions(w)
    if p["action"] == "rollout_restart":
        return act.rollout_restart(p["restarted_at"])
    if p["action"] == "rollout_undo":
        return act.rollout_undo(revisions_with_templates(w), p["to_revision"], p["from_revision"])
    if p["action"] == "set_resources":
        if not p["limits"] and not p["requests"]:
            raise WorkloadError("set_resources needs limits or requests")
        return act.set_resources(p["container"], p["limits"], p["requests"])
    if p["action"] == "set_image":
        return act.set_image(p["container"], p["image"])
    if p["action"] == "scale":
        if p["replicas"] < 0:
            raise WorkloadError(f"replicas must be 0 or more, got {p['replicas']}")
        return act.scale(p["replicas"])
    raise WorkloadError(f"unknown action {p['action']}")


def blocks_rollout(w):
    """True for a StatefulSet whose rolling update stops at a pod that is not Ready."""
    spec = w.obj.get("spec") or {}
    return w.kind == "StatefulSet" and spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady" and \
        (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def delete_pods(module, k8s, w):
    names = module.params["pods"]
    mine = {x["name"]: x for x in Evidence(k8s, w.kind, w.namespace, w.name).collect(details=False)["pods"]}
    foreign = [n for n in names if n not in mine]
    gone = [n for n in names if n in mine and mine[n]["deleting"]]
    todo = [n for n in names if n in mine and not mine[n]["deleting"]]
    if foreign:
        # a pod that is already gone was recreated meanwhile: not an error, nothing to delete
        module.warn(f"not pods of {w.what()} (or already gone): {', '.join(foreign)}")
    if not module.check_mode:
        for n in todo:
            try:
                k8s.core.delete_namespaced_pod(n, w.namespace)
            except ApiException as exc:
                if getattr(exc, "status", None) != 404:
                    raise WorkloadError(api_error(exc, f"cannot delete pod {w.namespace}/{n} of {w.what()}")) from None
    msg = f"deleted {len(todo)} pod(s) of {w.what()}: {', '.join(todo)}" if todo else \
        f"no pod to delete in {w.what()}"
    return bool(todo), {"pods": todo + gone}, {"pods": gone + todo}, msg, todo


def execute_module(module, k8s):
    p = module.params
    w = Workload(k8s, p["kind"], p["namespace"], p["name"])
    w.require()
    missing = [k for k in REQUIRED.get(p["action"], []) if p[k] is None]
    if missing:
        raise WorkloadError(f"action {p['action']} needs {', '.join(missing)}")
    result = {}
    if p["action"] == "delete_pods":
        changed, before, after, msg, deleted = delete_pods(module, k8s, w)
        result["deleted"] = deleted
    else:
        changed, patch, before, after, msg = plan(module, w)
        if changed and not module.check_mode:
            w.obj = Actions(w).apply(patch)
        if changed and p["action"] == "rollout_restart" and blocks_rollout(w):
            # An OrderedReady StatefulSet does not replace a pod that is not Ready: the
            # restart would wait forever behind the very pod it is meant to replace. Delete
            # the unready pods (the controller recreates them from the new template), as
            # the Kubernetes docs' forced rollback does.
            stuck = [x["name"] for x in Evidence(k8s, w.kind, w.namespace, w.name).collect(details=False)["pods"]
                     if not x["ready"] and not x["deleting"]]
            if stuck and not module.check_mode:
                for n in stuck:
                    try:
                        k8s.core.delete_namespaced_pod(n, w.namespace)
                    except ApiException as exc:
                        if getattr(exc, "status", None) != 404:
                            raise WorkloadError(api_error(exc, f"cannot delete pod {w.namespace}/{n} of {w.what()}")) \
                                from None
            if stuck:
                result["deleted"] = stuck
                msg += f"; deleted its unready pod(s) {', '.join(stuck)}, which an OrderedReady StatefulSet " \
                       "does not replace by itself"
    if module.check_mode and changed:
        msg = "would have " + msg if not msg.startswith("would") else msg
    result.update(changed=changed, msg=msg, before=before, after=after)
    if module._diff:
        result["diff"] = {"before": before, "after": after}

    def collect():
        return Evidence(k8s, w.kind, w.namespace, w.name).collect(details=False)

    if p["wait"] and changed and not module.check_mode:
        ev, result["wait"] = wait_healthy(collect, p["wait_timeout"], 0, p["wait_interval"])
        if not result["wait"]["healthy"]:
            result["msg"] = (f"{msg}, but {w.what()} is not healthy after {p['wait_timeout']:g} s: "
                             f"{result['wait']['reason']}; inspect its pods, or roll back")
            module.fail_json(**result)
    else:
        ev = w.spec_summary()
    result["workload"] = {k: ev.get(k) for k in ("replicas", "current_revision", "rollout_complete")}
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        module.exit_json(**execute_module(module, clients(module)))
    except WorkloadError as exc:
        module.fail_json(msg=str(exc))
    except ConnectionProblem as exc:
        module.fail_json(msg=unreachable(exc))


if __name__ == "__main__":
    main()
