"""The API's error shape for answers Django makes itself, whatever ``DEBUG`` is.

With ``DEBUG`` off, ``handler404`` and ``handler400`` (``errors_views``) answer in JSON
under ``/api/``. With ``DEBUG`` on, Django answers an unknown URL with its technical 404
page and a body over the limit with its technical 400 page instead, and never calls
those handlers. This middleware gives the API the same JSON either way: a 404 that is
not JSON becomes the API's ``not_found``, and a request refused while its body was read
(over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, too many fields) the API's 413 or 400.

It sits outside ``CommonMiddleware``, so ``APPEND_SLASH`` still redirects
``/api/v1/emails`` to ``/api/v1/emails/`` before a 404 reaches it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse

from .errors_views import bad_request, not_found


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


class ApiErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code == 404
            and _is_api(request)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return not_found(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if _is_api(request) and isinstance(exception, RequestDataTooBig | TooManyFieldsSent):
            return bad_request(request, exception)
        return None
