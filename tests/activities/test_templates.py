from __future__ import annotations

import pytest
from django.conf import settings

from activities.errors import TemplateRenderError
from activities.models import Email, RecordType
from activities.services.attachments import attachment_store
from activities.services.templates import (
    MERGE_FIELDS,
    merge_context,
    template_check,
    template_render,
)
from tests.factories import (
    AccountFactory,
    ContactFactory,
    TemplateFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

PARTS = {"subject": "subject", "body_html": "HTML body", "body_text": "text body"}


@pytest.fixture
def ann():
    account = AccountFactory(name="Acme AS", city="Oslo", email="post@acme.example")
    return ContactFactory(
        first_name="Ann",
        last_name="Lee",
        email="ann@customers.example.org",
        city="Bergen",
        account=account,
    )


def render_parts(record_type: str, regarding, sender=None, **parts):
    template = TemplateFactory(
        record_type=record_type,
        subject=parts.get("subject", ""),
        body_html=parts.get("body_html", ""),
        body_text=parts.get("body_text", ""),
    )
    return template_render(template=template, regarding=regarding, sender=sender)


# --- Merge fields ------------------------------------------------------------------


def test_contact_template_fills_contact_account_and_sender_fields(ann, owner):
    fields = (
        "{{ contact.first_name }}|{{ contact.last_name }}|{{ contact.full_name }}|"
        "{{ contact.email }}|{{ contact.city }}|{{ account.name }}|"
        "{{ sender.name }}|{{ sender.email }}"
    )
    expected = "Ann|Lee|Ann Lee|ann@customers.example.org|Bergen|Acme AS|Alice Archer|alice@staff.example.com"
    template = TemplateFactory(
        record_type=RecordType.CONTACT,
        subject="Offer for {{ contact.full_name }} at {{ account.name }}",
        body_html=f"<p>{fields}</p>",
        body_text=fields,
    )

    rendered = template_render(template=template, regarding=ann, sender=owner)

    assert rendered.subject == "Offer for Ann Lee at Acme AS"
    assert rendered.body_html == f"<p>{expected}</p>"
    assert rendered.body_text == expected
    assert rendered.attachments == []
    assert Email.objects.count() == 0


def test_contact_without_an_account_renders_account_fields_empty(owner):
    contact = ContactFactory(first_name="Bo", last_name="Ek", account=None)

    rendered = render_parts(
        RecordType.CONTACT,
        contact,
        owner,
        body_text="{{ contact.first_name }}/{{ account.name }}/",
    )

    assert rendered.body_text == "Bo//"


def test_html_body_escapes_merge_fields_but_text_body_and_subject_do_not(owner):
    contact = ContactFactory(first_name="<b>Ann</b>", last_name='O\'Neil & "Co"')
    part = "{{ contact.first_name }} {{ contact.last_name }}"

    rendered = render_parts(
        RecordType.CONTACT,
        contact,
        owner,
        subject=part,
        body_html=f"<p>{part}</p>",
        body_text=part,
    )

    assert rendered.body_html == ("<p>&lt;b&gt;Ann&lt;/b&gt; O&#x27;Neil &amp; &quot;Co&quot;</p>")
    assert "<b>Ann</b>" not in rendered.body_html
    assert rendered.body_text == '<b>Ann</b> O\'Neil & "Co"'
    assert rendered.subject == '<b>Ann</b> O\'Neil & "Co"'


def test_subject_collapses_line_breaks_to_one_line(owner):
    contact = ContactFactory(first_name="Ann\r\nBcc: victim@example.com", last_name="Lee")

    rendered = render_parts(
        RecordType.CONTACT,
        contact,
        owner,
        subject="Hello\n  {{ contact.first_name }}\r\n\twelcome\u2028back",
        body_text="line 1\n{{ contact.last_name }}\n",
    )

    assert rendered.subject == "Hello Ann Bcc: victim@example.com welcome back"
    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    assert rendered.body_text == "line 1\nLee\n"


def test_account_template_fills_account_and_sender_fields(owner):
    account = AccountFactory(name="Acme & Sons", city="Tromsø", email="hello@acme.example")

    rendered = render_parts(
        RecordType.ACCOUNT,
        account,
        owner,
        subject="News for {{ account.name }}",
        body_html="{{ account.name }} in {{ account.city }}",
        body_text="{{ account.name }}|{{ account.city }}|{{ account.email }}|{{ contact.full_name }}|{{ sender.name }}",
    )

    assert rendered.subject == "News for Acme & Sons"
    assert rendered.body_html == "Acme &amp; Sons in Tromsø"
    assert rendered.body_text == "Acme & Sons|Tromsø|hello@acme.example||Alice Archer"


def test_user_template_fills_user_fields(owner):
    colleague = UserFactory(
        username="kim", first_name="Kim", last_name="Berg", email="kim@staff.example.com"
    )

    rendered = render_parts(
        RecordType.USER,
        colleague,
        owner,
        subject="Welcome {{ user.first_name }}",
        body_text="{{ user.first_name }}|{{ user.last_name }}|{{ user.full_name }}|{{ user.email }}|{{ sender.email }}",
    )

    assert rendered.subject == "Welcome Kim"
    assert rendered.body_text == "Kim|Berg|Kim Berg|kim@staff.example.com|alice@staff.example.com"


def test_user_without_a_name_renders_the_username_as_full_name():
    nameless = UserFactory(username="ops", first_name="", last_name="")

    rendered = render_parts(RecordType.USER, nameless, body_text="{{ user.full_name }}")

    assert rendered.body_text == "ops"


def test_queue_sender_fills_sender_fields_with_the_queue_name_and_address(ann, team_queue):
    rendered = render_parts(
        RecordType.CONTACT, ann, team_queue, body_text="{{ sender.name }} <{{ sender.email }}>"
    )

    assert rendered.body_text == "Support <support@example.com>"


def test_global_template_renders_for_any_record_or_none(ann, owner):
    template = TemplateFactory(
        record_type=RecordType.GLOBAL,
        subject="From {{ sender.name }}",
        body_html="",
        body_text="[{{ contact.first_name }}][{{ account.name }}][{{ user.full_name }}]",
    )

    for_nothing = template_render(template=template, regarding=None, sender=owner)
    for_contact = template_render(template=template, regarding=ann, sender=owner)
    without_sender = template_render(template=template, regarding=None)

    assert (for_nothing.subject, for_nothing.body_text) == ("From Alice Archer", "[][][]")
    assert for_contact.body_text == "[Ann][Acme AS][]"
    assert without_sender.subject == "From"


def test_merge_context_holds_only_plain_strings(ann, owner):
    context = merge_context(regarding=ann, sender=owner)

    assert set(context) == set(MERGE_FIELDS)
    for kind, fields in context.items():
        assert type(fields) is dict
        assert set(fields) == set(MERGE_FIELDS[kind])
        assert all(type(value) is str for value in fields.values())


def test_rendering_returns_the_template_attachments(ann, owner):
    template = TemplateFactory(record_type=RecordType.CONTACT)
    attachment, _ = attachment_store(owner=template, source=b"brochure", filename="b.pdf")

    rendered = template_render(template=template, regarding=ann, sender=owner)

    assert rendered.attachments == [attachment]


# --- The sandbox -------------------------------------------------------------------

ESCAPE_ATTEMPTS = [
    ("{% load static %}", "'load'"),
    ('{% include "x.html" %}', "'include'"),
    ('{% extends "base.html" %}', "'extends'"),
    ("{% debug %}", "'debug'"),
    ("{{ user.password }}", "user.password"),
    ('{{ user.password|default:"x" }}', "user.password"),
    ("{% with p=user.password %}{{ p }}{% endwith %}", "user.password"),
    ("{{ settings.SECRET_KEY }}", "settings.SECRET_KEY"),
    ("{{ contact.__class__ }}", "underscores"),
    ("{{ user.first_name.__class__.__mro__ }}", "underscores"),
    ("{{ request }}", "request"),
    ("{{ request.user.password }}", "request.user.password"),
    ("{% url 'admin:index' %}", "'url'"),
    ("{% csrf_token %}", "'csrf_token'"),
    ("{{ x|safe }}", "'safe'"),
    ("{{ contact.first_name|safe }}", "'safe'"),
    ("{{ contact.first_name|safeseq }}", "'safeseq'"),
    ("{{ user|pprint }}", "'pprint'"),
    ("{% autoescape off %}{{ contact.first_name }}{% endautoescape %}", "'autoescape'"),
    ("{% lorem %}", "'lorem'"),
    ("{% block body %}{% endblock %}", "'block'"),
]


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize(("source", "named"), ESCAPE_ATTEMPTS)
def test_escape_attempt_fails_naming_the_problem_and_leaks_nothing(part, source, named):
    victim = UserFactory(username="victim", first_name="Vic", last_name="Tim")
    victim.set_password("correct horse battery staple")
    victim.save()
    secrets = [victim.password, settings.SECRET_KEY]
    parts = {"subject": "Hi", "body_html": "<p>Hi</p>", "body_text": "Hi", part: source}

    with pytest.raises(TemplateRenderError) as excinfo:
        render_parts(RecordType.USER, victim, victim, **parts)

    error = excinfo.value
    assert error.code == "template_error"
    assert named in error.message
    assert PARTS[part] in error.message
    assert error.line == 1
    for secret in secrets:
        assert secret not in error.message
        assert secret not in repr(error.extra)


def test_conditions_and_loops_see_only_merge_fields(owner):
    victim = UserFactory(username="victim2", first_name="Vic", last_name="Tim")
    victim.set_password("another secret")
    victim.save()

    rendered = render_parts(
        RecordType.USER,
        victim,
        owner,
        body_text=(
            "{% if user.password %}LEAK{% endif %}"
            "{% firstof user.password settings.SECRET_KEY 'none' %}|"
            "{% for key in user %}{{ key }},{% endfor %}"
        ),
    )

    assert rendered.body_text == "none|first_name,last_name,full_name,email,"
    assert victim.password not in rendered.body_text
    assert settings.SECRET_KEY not in rendered.body_text


# --- Errors ------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["body_html", "body_text"])
@pytest.mark.parametrize(
    ("line3", "named"),
    [
        ("{% if %}", "if"),
        ("{% if contact.city %}never closed", "endif"),
        ("{% bogus %}", "'bogus'"),
        ("{{ contact.nickname }}", "contact.nickname"),
        ("{{ contact.city|no_such_filter }}", "'no_such_filter'"),
    ],
)
def test_template_error_names_the_line_it_is_on(ann, owner, part, line3, named):
    body = f"Dear {{{{ contact.first_name }}}},\nthank you.\n{line3}\nRegards"

    with pytest.raises(TemplateRenderError) as excinfo:
        render_parts(RecordType.CONTACT, ann, owner, subject="Hi", **{part: body})

    assert excinfo.value.line == 3
    assert excinfo.value.extra == {"line": 3}
    assert f"{PARTS[part]}, line 3" in excinfo.value.message
    assert named in excinfo.value.message


def test_filter_failing_on_a_merge_value_is_a_template_error(ann, owner):
    with pytest.raises(TemplateRenderError) as excinfo:
        render_parts(
            RecordType.CONTACT, ann, owner, body_text="ok\n{{ contact.city|divisibleby:2 }}"
        )

    assert excinfo.value.line == 2
    assert "text body, line 2" in excinfo.value.message


@pytest.mark.parametrize(
    ("record_type", "regarding_kind"),
    [
        (RecordType.CONTACT, "account"),
        (RecordType.CONTACT, "user"),
        (RecordType.CONTACT, None),
        (RecordType.ACCOUNT, "contact"),
        (RecordType.USER, "contact"),
    ],
)
def test_template_for_another_record_type_is_refused(owner, record_type, regarding_kind):
    regarding = {
        "account": AccountFactory,
        "contact": ContactFactory,
        "user": UserFactory,
        None: lambda: None,
    }[regarding_kind]()
    template = TemplateFactory(record_type=record_type, title="Renewal")

    with pytest.raises(TemplateRenderError) as excinfo:
        template_render(template=template, regarding=regarding, sender=owner)

    assert f"for a {record_type} record" in excinfo.value.message
    assert (regarding_kind or "nothing") in excinfo.value.message
    assert "Renewal" in excinfo.value.message
    assert excinfo.value.line is None
    assert Email.objects.count() == 0


def test_template_check_accepts_a_template_using_every_merge_field():
    every_field = " ".join(
        f"{{{{ {kind}.{name} }}}}" for kind, names in MERGE_FIELDS.items() for name in names
    )

    result = template_check(
        subject="Hi {{ contact.first_name|default:'there' }}",
        body_html=f"<p>{every_field}</p>{{% if account.name %}}x{{% endif %}}",
        body_text=f"{every_field}\n{{% for c in contact.city %}}{{{{ c }}}}{{% endfor %}}",
    )

    assert result is None


@pytest.mark.parametrize(
    ("parts", "where"),
    [
        ({"subject": "Hi {{ contact.first_name|nope }}"}, "subject, line 1"),
        ({"body_html": "<p>\n{% for x in %}</p>"}, "HTML body, line 2"),
        ({"body_text": "a\nb\nc\n{{ account.owner }}"}, "text body, line 4"),
        ({"body_html": "{% load i18n %}"}, "HTML body, line 1"),
        ({"body_text": "{{ contact.email|safe }}"}, "text body, line 1"),
    ],
)
def test_template_check_refuses_an_invalid_template_naming_the_part(parts, where):
    full = {"subject": "Hi", "body_html": "<p>Hi</p>", "body_text": "Hi", **parts}

    with pytest.raises(TemplateRenderError) as excinfo:
        template_check(**full)

    assert where in excinfo.value.message


@pytest.mark.parametrize("name", ["ljust", "rjust", "center"])
def test_padding_filters_refuse_huge_widths(name):
    from activities.errors import TemplateRenderError
    from activities.services.templates import template_check

    template_check(subject="", body_html=f'{{{{ contact.first_name|{name}:"20" }}}}', body_text="")
    with pytest.raises(TemplateRenderError, match="over the limit"):
        template_check(
            subject="", body_html=f'{{{{ contact.first_name|{name}:"999999999" }}}}', body_text=""
        )
