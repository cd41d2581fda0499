"""A stand-in for dynamics-core's ``compat.dynamics.odata`` (the OData error body and
view base) until that branch is merged; replaced by it then."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from common.api.parsers import JSONParser
from common.errors import ApplicationError
from compat.base import VendorAPIView

ODATA_VERSION = "4.0"
SERVICE_ROOT = "/api/data/v9.2/"
INVALID_ARGUMENT = "0x80040203"
_CODE_OF_STATUS = {401: "0x8005f101", 403: "0x80048405", 404: "0x80040217"}


def odata_error(http_status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "error": {"code": _CODE_OF_STATUS.get(http_status, INVALID_ARGUMENT), "message": message}
    }


class ODataError(ApplicationError):
    code = "odata_query"


class PayloadError(ODataError):
    code = "odata_payload"


class RecordNotFound(ApplicationError):
    code = "not_found"
    http_status = 404


class DynamicsView(VendorAPIView):
    error_shape = staticmethod(odata_error)
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    def handle_exception(self, exc):
        if isinstance(exc, Http404):
            exc = RecordNotFound(str(exc) or "the record does not exist")
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["OData-Version"] = ODATA_VERSION
        return response


def context_url(request: Request, fragment: str) -> str:
    return request.build_absolute_uri(f"{SERVICE_ROOT}$metadata#{fragment}")
