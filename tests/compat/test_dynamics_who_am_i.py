"""WhoAmI(): what Dataverse clients call first, answered for the token's user."""

from __future__ import annotations

import pytest

from compat.dynamics.ids import guid_of
from crm.models import Organization
from tests.api import client_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/data/v9.2/WhoAmI()", "/api/data/v9.2/WhoAmI"])
def test_who_am_i_names_the_caller_and_the_organization(owner, path):
    response = client_for(owner).get(path)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["UserId"] == guid_of(owner.pk)
    assert body["OrganizationId"] == body["BusinessUnitId"] == guid_of(Organization.SINGLETON_ID)
    assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")


def test_who_am_i_without_a_token_is_a_401_in_the_odata_shape(db):
    response = client_for(None).get("/api/data/v9.2/WhoAmI()")
    assert response.status_code == 401
    assert set(response.json()["error"]) >= {"code", "message"}


def test_who_am_i_refuses_query_options_in_words(owner):
    response = client_for(owner).get("/api/data/v9.2/WhoAmI()?$select=UserId")
    assert response.status_code == 400
    assert "$select is not supported here" in response.json()["error"]["message"]


def test_the_metadata_declares_who_am_i_as_a_function(owner):
    document = client_for(owner).get("/api/data/v9.2/$metadata").content.decode()
    assert '<Function Name="WhoAmI" IsBound="false">' in document
    assert '<FunctionImport Name="WhoAmI" Function="mscrm.WhoAmI"' in document
    assert '<ComplexType Name="WhoAmIResponse">' in document
