from __future__ import annotations

import pytest

from crm.models import User
from tests.factories import UserFactory


@pytest.fixture
def alice(db) -> User:
    """An approved sender with a fixed name, so headers can be compared exactly."""
    return UserFactory(
        username="alice", first_name="Alice", last_name="Archer", email="alice@staff.example.com"
    )
