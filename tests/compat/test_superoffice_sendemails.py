"""SuperOffice's EMail agent ``SendEMails`` (compat/superoffice): each e-mail of a
batch created and sent on its own, in one transaction, answered as EMailEntity."""

from __future__ import annotations

import pytest

from tests.api import client_for

pytestmark = pytest.mark.django_db

URL = "/api/v1/Agents/EMail/SendEMails"


def entity(**fields):
    return {
        "To": [{"Address": "ann@example.com", "Name": "Ann Lee"}],
        "Subject": "Quarterly figures",
        "PlainBody": "Hello Ann",
        **fields,
    }


def post(user, body, **kwargs):
    return client_for(user).post(URL, body, format="json", **kwargs)


def test_smoke(owner):
    response = post(owner, {"Emails": [entity()]})
    print(response.json())
    assert response.status_code == 200
