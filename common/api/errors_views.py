"""Answers Django gives before a view runs (no route, a body over the limit, a refused
request): JSON in the API's error shape under /api/, Django's pages elsewhere."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import JsonResponse
from django.views import defaults


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request, exception=None):
    if not request.path.startswith("/api/"):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return JsonResponse(
            {
                "detail": f"the request body is over the limit of {limit:,} bytes "
                f"({limit / 1024 / 1024:g} MB); files go to an attachments endpoint, "
                f"as multipart, where their own limit applies",
                "code": "request_too_large",
            },
            status=413,
        )
    if isinstance(exception, TooManyFieldsSent):
        detail = "the request has more fields than the limit"
    else:
        detail = "the request was refused as malformed"
    return JsonResponse({"detail": detail, "code": "bad_request"}, status=400)
