"""Showing mail HTML to staff: sanitised with nh3, framed without scripts, nothing remote.

Three layers, each enough on its own for scripts: nh3 keeps only a list of tags,
attributes and URL schemes (no ``<script>``, no ``on*=``, no ``javascript:``, no
``<iframe>``); the page frames the body in ``<iframe sandbox>`` without
``allow-scripts``; and the body's own response carries a Content-Security-Policy
with ``script-src 'none'`` and no remote sources. Remote images are removed by the
sanitiser (and blocked by the policy) until the reader asks for them.
"""

from __future__ import annotations

import html as html_entities
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import nh3
from django.http import HttpResponse
from django.utils.html import escape, strip_tags

# Mail is laid out with tables, inline styles and the old presentational attributes.
TAGS = nh3.ALLOWED_TAGS | {"font", "tfoot", "center"}
_LAYOUT = {"align", "valign", "width", "height", "bgcolor", "border", "cellpadding",
           "cellspacing", "dir", "lang", "title", "style", "class"}  # fmt: skip
ATTRIBUTES = {
    "*": _LAYOUT,
    **{tag: set(attrs) | _LAYOUT for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "img": {"src", "alt", "width", "height", "align", "border", "style", "title"},
    "font": {"color", "face", "size"} | _LAYOUT,
    "td": set(nh3.ALLOWED_ATTRIBUTES["td"]) | _LAYOUT | {"nowrap"},
    "th": set(nh3.ALLOWED_ATTRIBUTES["th"]) | _LAYOUT | {"nowrap"},
}
# Style properties that cannot fetch anything (no background-image, no url()).
STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "line-height", "letter-spacing", "text-align", "text-decoration",
    "text-transform", "text-indent", "white-space", "vertical-align", "direction",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left",
    "border-color", "border-style", "border-width", "border-radius", "border-collapse",
    "border-spacing", "width", "min-width", "max-width", "height", "min-height",
    "max-height", "display", "list-style-type", "table-layout", "word-break",
    "overflow-wrap",
}  # fmt: skip
URL_SCHEMES = {"http", "https", "mailto", "tel", "cid", "data"}
# Dropped with everything inside them, not just unwrapped.
CONTENT_DROPPED = {"script", "style", "title", "head", "iframe", "object", "embed",
                   "noscript", "template", "svg", "math", "form", "textarea", "select"}  # fmt: skip
_REMOTE = ("http:", "https:", "//")


@dataclass(frozen=True)
class SafeHtml:
    html: str
    blocked_images: int  # remote images removed because they were not asked for


def sanitize_email_html(
    html: str, *, remote_images: bool = False, inline_images: Mapping[str, str] | None = None
) -> SafeHtml:
    """The mail's HTML reduced to what can show but not act or fetch.

    Images are kept when they are inline (``data:``, ``cid:``); remote ones only with
    ``remote_images``, else removed and counted so the page can offer to load them.
    ``inline_images`` maps a Content-ID to the URL (on this site) that serves that part:
    a ``cid:`` source naming one becomes that URL, the only relative source kept; one
    naming no part stays ``cid:``, which loads nothing.
    """
    blocked = 0
    inline = inline_images or {}

    def keep(tag: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        if tag == "img" and attribute == "src":
            text = value.strip().lower()
            if text.startswith(_REMOTE):
                if not remote_images:
                    blocked += 1
                    return None
            elif text.startswith("cid:"):
                content_id = unquote(value.strip()[4:]).strip().strip("<>")
                return inline.get(content_id, value)
            elif not text.startswith("data:image/"):
                # A relative source would be fetched from this site with the reader's
                # cookies (and the frame's policy refuses it anyway).
                return None
        elif attribute in ("href", "src") and value.strip().lower().startswith("data:"):
            return None  # a data: link could open a page of its own
        return value

    cleaned = nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags=CONTENT_DROPPED,
        attributes=ATTRIBUTES,
        attribute_filter=keep,
        url_schemes=URL_SCHEMES,
        filter_style_properties=STYLE_PROPERTIES,
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    )
    return SafeHtml(html=cleaned, blocked_images=blocked)


# Flags shared by the <iframe sandbox> attribute and the body's own CSP sandbox: links
# open in a new tab outside the sandbox; no scripts, forms, top navigation or plugins.
# allow-same-origin (without allow-scripts nothing inside can use it) lets the page
# size the frame to its content.
FRAME_SANDBOX = "allow-same-origin allow-popups allow-popups-to-escape-sandbox"


def frame_policy(*, remote_images: bool, inline_images: bool = False) -> str:
    images = "data: cid: https: http:" if remote_images else "data: cid:"
    if inline_images:  # the message's own parts, served by this site (inline_images)
        images = f"'self' {images}"
    return (
        f"default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; "
        f"img-src {images}; font-src data:; media-src 'none'; connect-src 'none'; "
        f"form-action 'none'; base-uri 'none'; frame-ancestors 'self'; "
        f"sandbox {FRAME_SANDBOX}"
    )


_FRAME_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><base target="_blank">
<style>body{{margin:0;padding:12px;font:15px/1.5 system-ui,sans-serif;color:#1f2328;\
overflow-wrap:anywhere}}img{{max-width:100%;height:auto}}pre{{white-space:pre-wrap}}</style>
</head><body>{body}</body></html>"""


def body_frame_response(
    *,
    html: str = "",
    text: str = "",
    remote_images: bool = False,
    inline_images: Mapping[str, str] | None = None,
) -> HttpResponse:
    """The page an ``<iframe sandbox="{FRAME_SANDBOX}">`` shows: the sanitised HTML
    (or the plain text, escaped) under the frame's own Content-Security-Policy, which
    lets images load from this site only when ``inline_images`` (Content-ID -> URL)
    names some."""
    if html.strip():
        body = sanitize_email_html(
            html, remote_images=remote_images, inline_images=inline_images
        ).html
    else:
        body = f"<pre>{escape(text)}</pre>"
    response = HttpResponse(_FRAME_PAGE.format(body=body))
    # Set here, so django-csp leaves it alone (it only adds a header that is missing).
    response["Content-Security-Policy"] = frame_policy(
        remote_images=remote_images, inline_images=bool(inline_images)
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    # The one kind of page that the staff pages frame (every other page: DENY).
    response["X-Frame-Options"] = "SAMEORIGIN"
    return response


_LINE_ENDS = re.compile(r"(?i)<br\s*/?>|</p>|</div>|</li>|</tr>|</h\d>")


def text_of_html(body_html: str) -> str:
    """The plain text of mail HTML, a line per paragraph, row or item (for quoting a
    reply, or a text part where a template has none)."""
    text = html_entities.unescape(strip_tags(_LINE_ENDS.sub("\n", body_html)))
    return re.sub(r"\n{3,}", "\n\n", text).strip()
