"""Templates have a budget: tag nesting, loop items, output size and time of one render,
each refused in words that name the limit, wherever a template is rendered (save,
preview, instantiate, send, bulk jobs). Issue 11: these were a RecursionError (500), a
20 MB string and a million loop iterations."""

from __future__ import annotations

import pytest

from activities.errors import TemplateRenderError
from activities.models import BulkSendStatus, Email, Template
from activities.services.bulk import bulk_send_run, bulk_send_start
from activities.services.templates import template_check, template_render
from tests.api import client_for
from tests.factories import ContactFactory, TemplateFactory
from tests.pages import signed_in

NESTED_IFS = "{% if 1 %}" * 3000 + "deep" + "{% endif %}" * 3000
HUGE_STRING = '{{ "x"|stringformat:"20000000s" }}'
# 100 x 100 x 100 = a million iterations.
CUBE = (
    '{% for a in "' + "x" * 100 + '" %}{% for b in "' + "x" * 100 + '" %}'
    '{% for c in "' + "x" * 100 + '" %}.{% endfor %}{% endfor %}{% endfor %}'
)


def check(body_text: str) -> TemplateRenderError:
    with pytest.raises(TemplateRenderError) as caught:
        template_check(subject="Hi", body_html="", body_text=body_text)
    return caught.value


def test_deep_nesting_is_refused_before_parsing_naming_the_limit():
    error = check(NESTED_IFS)
    assert str(error) == (
        "template error in text body, line 1: tags are nested 3000 deep, over the limit of 30"
    )
    assert error.field == "body_text"


def test_nesting_within_the_limit_renders(settings):
    settings.CRM_TEMPLATE_MAX_NESTING = 5
    template_check(subject="Hi", body_html="", body_text="{% if 1 %}" * 5 + "{% endif %}" * 5)
    with pytest.raises(TemplateRenderError, match="nested 6 deep, over the limit of 5"):
        template_check(subject="Hi", body_html="", body_text="{% if 1 %}" * 6 + "{% endif %}" * 6)


def test_stringformat_and_floatformat_cannot_make_huge_strings():
    assert "stringformat width or precision 20000000 is over the limit of 1000" in str(
        check(HUGE_STRING)
    )
    assert "over the limit of 1000" in str(check('{{ 1.5|stringformat:".5000f" }}'))
    assert "floatformat digits 100000 is over the limit of 50" in str(
        check("{{ 1.5|floatformat:100000 }}")
    )
    template_check(subject="Hi", body_html="", body_text='{{ 3|stringformat:"05d" }}')


def test_loops_have_an_iteration_budget_for_the_whole_render():
    error = check(CUBE)
    assert "template over its budget in text body" in str(error)
    assert "loops ran over 10,000 items in all, the limit of one render" in str(error)


def test_output_has_a_size_budget(settings):
    settings.CRM_TEMPLATE_MAX_OUTPUT = 5_000
    error = check('{% for a in "' + "x" * 10 + '" %}{{ "y"|ljust:1000 }}{% endfor %}')
    assert "the output is over 5,000 characters, the limit of one render" in str(error)


def test_rendering_has_a_time_budget(settings):
    settings.CRM_TEMPLATE_MAX_SECONDS = 0
    error = check('{% for a in "xy" %}{{ a }}{% endfor %}')
    assert "rendering took over 0 s, the limit of one render" in str(error)


def test_an_ordinary_loop_is_within_budget():
    template_check(
        subject="Hi",
        body_html="<ul>{% for c in 'abc' %}<li>{{ c }}</li>{% endfor %}</ul>",
        body_text="{% for c in 'abc' %}{{ c }}{% endfor %}",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("body", [NESTED_IFS, HUGE_STRING, CUBE], ids=["nesting", "size", "loops"])
def test_saving_over_budget_is_a_400_that_names_the_limit(staff, body):
    answer = client_for(staff).post(
        "/api/v1/templates/",
        {"title": "T", "record_type": "contact", "subject": "Hi", "body_text": body},
        format="json",
    )
    assert answer.status_code == 400, answer.content
    assert answer.json()["code"] == "template_error"
    assert "limit" in answer.json()["detail"]
    assert not Template.objects.exists()


@pytest.mark.django_db
def test_the_preview_of_anyone_shows_the_refusal(owner):
    """A non-staff user can reach the preview: it answers the refusal, not a 500."""
    for body in (NESTED_IFS, HUGE_STRING, CUBE):
        page = signed_in(owner).post(
            "/templates/preview/",
            {"title": "T", "record_type": "global", "subject": "Hi", "body_text": body},
        )
        assert page.status_code == 200
        assert "limit" in page.content.decode()


@pytest.mark.django_db
def test_instantiating_a_stored_template_over_budget_is_refused(settings):
    """A template saved before a limit was lowered is refused when rendered."""
    contact = ContactFactory()
    template = TemplateFactory(body_text='{% for a in "' + "x" * 50 + '" %}.{% endfor %}')
    settings.CRM_TEMPLATE_MAX_ITERATIONS = 10
    with pytest.raises(TemplateRenderError, match="loops ran over 10 items"):
        template_render(template=template, regarding=contact)


@pytest.mark.django_db
def test_a_bulk_job_over_budget_stops_with_the_reason(settings, owner, team_queue):
    ContactFactory.create_batch(3)
    template = TemplateFactory(body_text='{% for a in "' + "x" * 50 + '" %}.{% endfor %}')
    settings.CRM_TEMPLATE_MAX_ITERATIONS = 10
    job = bulk_send_start(template=template, sender=team_queue, query={}, actor=owner)
    job = bulk_send_run(job_id=job.pk)
    assert job.status == BulkSendStatus.FAILED
    assert "loops ran over 10 items in all" in job.error
    assert not Email.objects.filter(bulk_send=job).exists()
