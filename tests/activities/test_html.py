"""The sanitiser and the body frame: what an email's HTML may keep, and its policy."""

from __future__ import annotations

import pytest

from activities.html import body_frame_response, frame_policy, sanitize_email_html

HOSTILE = """<p onclick="alert(1)">Hi <b>Ann</b></p>
<script>alert('x')</script>
<img src="x" onerror="alert(2)">
<a href="javascript:alert(3)">click</a>
<iframe srcdoc="<script>alert(4)</script>"></iframe>
<form action="https://evil.example/"><input name=a></form>
<svg onload="alert(5)"><circle/></svg>
<style>body{background:url(https://evil.example/bg.png)}</style>
<div style="background-image:url(https://evil.example/t.png);color:red">styled</div>
<img src="https://tracker.example/pixel.gif" alt="pixel">
<a href="data:text/html,<script>alert(6)</script>">data link</a>"""


def test_hostile_html_keeps_its_text_and_loses_everything_that_acts_or_fetches():
    safe = sanitize_email_html(HOSTILE)
    html = safe.html.lower()
    for gone in ("script", "onerror", "onclick", "onload", "javascript:", "iframe",
                 "srcdoc", "<form", "<input", "<svg", "evil.example", "tracker.example",
                 "background-image", "data:text"):  # fmt: skip
        assert gone not in html, gone
    assert "Hi <b>Ann</b>" in safe.html
    assert 'style="color:red"' in safe.html
    assert safe.blocked_images == 1


def test_remote_images_stay_only_when_asked_for():
    html = (
        '<img src="https://cdn.example/logo.png" alt="logo"><img src="data:image/png;base64,iVBO">'
    )
    assert sanitize_email_html(html).html.count("<img") == 2
    assert "cdn.example" not in sanitize_email_html(html).html
    shown = sanitize_email_html(html, remote_images=True)
    assert "https://cdn.example/logo.png" in shown.html and shown.blocked_images == 0


def test_links_open_outside_and_carry_no_referrer():
    html = sanitize_email_html('<a href="https://crm.example/x">x</a>').html
    assert 'rel="noopener noreferrer nofollow"' in html


@pytest.mark.parametrize("remote", [False, True])
def test_the_frame_policy_never_allows_scripts(remote):
    policy = frame_policy(remote_images=remote)
    assert "script-src 'none'" in policy and "default-src 'none'" in policy
    assert "allow-scripts" not in policy
    assert ("https:" in policy) is remote


def test_a_plain_text_body_is_escaped_in_the_frame():
    response = body_frame_response(text="<b>not bold</b> & more")
    assert b"&lt;b&gt;not bold&lt;/b&gt; &amp; more" in response.content
    assert response["Content-Security-Policy"] == frame_policy(remote_images=False)
