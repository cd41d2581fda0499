import pytest

from tests.api import client_for
from tests.factories import UserFactory


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/v1/emails/0.5/", "/api/v1/no-such-thing/", "/api/v1/emails/1/x/"]
)
def test_unknown_api_urls_answer_json_404(path):
    response = client_for(UserFactory()).get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_unknown_page_outside_the_api_is_still_html(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
