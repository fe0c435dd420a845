#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: incident_info
short_description: Read incidents, their timeline and actions from the ledger, as data or Markdown
version_added: 0.1.0
description:
  - Returns one incident with its alerts, timeline and actions, or lists incidents.
  - Renders the incident report and the post-incident review draft in Markdown, filled from the
    record, with the runbook template's sections (summary, timeline, root cause, impact, resolution,
    contributing factors, action items, lessons learned).
  - Optionally writes the review draft to a file (C(review_path)). Like the ledger, the draft is part
    of the incident journal, so the module reports C(changed=false) and C(written) says whether the file
    was (re)written.
author:
  - OctoLLM SRE (@octollm)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only, except I(review_path), which is not written in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  ledger:
    description: Ledger location (SQLite path or C(postgresql://) DSN); defaults to C($OCTOLLM_LEDGER).
    type: str
  incident_id:
    description: The incident to read. Without it, incidents are listed.
    type: int
  status:
    description: When listing, only incidents in this status.
    type: str
    choices: [open, closed]
  target:
    description: When listing, only incidents of this target key.
    type: str
  limit:
    description: When listing, at most this many (newest first).
    type: int
    default: 50
  review_path:
    description: Write the post-incident review draft of I(incident_id) to this file.
    type: path
"""

EXAMPLES = r"""
- name: Print an incident as Markdown
  octollm.alert_response.incident_info:
    incident_id: 12
  register: report

- name: Show it
  ansible.builtin.debug:
    msg: "{{ report.markdown }}"

- name: Write the post-incident review draft
  octollm.alert_response.incident_info:
    incident_id: 12
    review_path: /var/lib/octollm/reviews/incident-12.md

- name: List open incidents
  octollm.alert_response.incident_info:
    status: open
"""

RETURN = r"""
incident:
  description: The incident (with I(incident_id)).
  returned: when incident_id is given
  type: dict
timeline:
  description: Timeline entries, oldest first.
  returned: when incident_id is given
  type: list
  elements: dict
actions:
  description: Actions with their guardrail verdicts.
  returned: when incident_id is given
  type: list
  elements: dict
alerts:
  description: Alerts linked to the incident.
  returned: when incident_id is given
  type: list
  elements: dict
markdown:
  description: The incident report in Markdown.
  returned: when incident_id is given
  type: str
review_markdown:
  description: The post-incident review draft in Markdown.
  returned: when incident_id is given
  type: str
written:
  description: Whether I(review_path) was written.
  returned: when review_path is given
  type: bool
incidents:
  description: Incidents (without I(incident_id)).
  returned: when incident_id is not given
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils import incident as inc
from ansible_collections.octollm.alert_response.plugins.module_utils.ledger import Ledger, LedgerError, _redact


def main():
    module = AnsibleModule(
        argument_spec=dict(
            ledger=dict(type="str"), incident_id=dict(type="int"),
            status=dict(type="str", choices=["open", "closed"]), target=dict(type="str"),
            limit=dict(type="int", default=50), review_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    location = p["ledger"] or os.environ.get("OCTOLLM_LEDGER")
    if location and "@" in location and ":" in location.split("://", 1)[-1].split("@", 1)[0]:
        module.no_log_values.add(location.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1])
    result = {"changed": False}
    try:
        with Ledger.open(location) as ledger:
            if p["incident_id"] is None:
                result["incidents"] = ledger.incidents(status=p["status"], target_key=p["target"], limit=p["limit"])
                module.exit_json(**result)
            incident = ledger.get_incident(p["incident_id"])
            if incident is None:
                module.fail_json(msg=f"incident {p['incident_id']} is not in {ledger.describe()}; "
                                     "list incidents by leaving incident_id out")
            review = inc.review_markdown(ledger, p["incident_id"])
            result.update(incident=incident, timeline=ledger.timeline(p["incident_id"]),
                          actions=ledger.actions(incident_id=p["incident_id"]),
                          alerts=[inc.public_alert(a) for a in ledger.incident_alerts(p["incident_id"])],
                          markdown=inc.report_markdown(ledger, p["incident_id"]), review_markdown=review)
    except (LedgerError, inc.IncidentError) as exc:
        module.fail_json(msg=_redact(str(exc)))
    if p["review_path"]:
        old = open(p["review_path"]).read() if os.path.exists(p["review_path"]) else None
        # the draft is part of the incident journal, like the ledger: written, not "changed"
        result["written"] = old != review and not module.check_mode
        if old != review:
            if not module.check_mode:
                os.makedirs(os.path.dirname(os.path.abspath(p["review_path"])), exist_ok=True)
                with open(p["review_path"], "w") as f:
                    f.write(review)
        result["review_path"] = p["review_path"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
