"""Fixtures shared by the unit tests."""
from __future__ import annotations

import pytest

from ansible_collections.octollm.alert_response.plugins.module_utils.ledger import Ledger


@pytest.fixture
def ledger(tmp_path):
    """A real SQLite ledger of the test's own."""
    with Ledger.open(str(tmp_path / "ledger.sqlite3")) as lg:
        yield lg
