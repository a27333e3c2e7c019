"""NGSI-LD errors: one class per problem type, with its HTTP status (ETSI GS CIM 009, 5.5.2)."""

from __future__ import annotations

from typing import Any

ERROR_BASE = "https://uri.etsi.org/ngsi-ld/errors/"


class NgsiLdError(Exception):
    """Base of every error Burgo reports to a client as RFC 7807 problem details."""

    problem: str = "InternalError"
    status: int = 500
    title: str = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return ERROR_BASE + self.problem

    def to_problem(self) -> dict[str, Any]:
        """The problem-details body of this error."""
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        body.update(self.extra)
        return body


class InvalidRequest(NgsiLdError):
    problem, status, title = "InvalidRequest", 400, "Invalid request"


class BadRequestData(NgsiLdError):
    problem, status, title = "BadRequestData", 400, "Bad request data"


class AlreadyExists(NgsiLdError):
    problem, status, title = "AlreadyExists", 409, "Already exists"


class OperationNotSupported(NgsiLdError):
    problem, status, title = "OperationNotSupported", 422, "Operation not supported"


class ResourceNotFound(NgsiLdError):
    problem, status, title = "ResourceNotFound", 404, "Resource not found"


class TooComplexQuery(NgsiLdError):
    problem, status, title = "TooComplexQuery", 403, "Too complex query"


class TooManyResults(NgsiLdError):
    problem, status, title = "TooManyResults", 403, "Too many results"


class LdContextNotAvailable(NgsiLdError):
    problem, status, title = "LdContextNotAvailable", 503, "JSON-LD context not available"


class NonexistentTenant(NgsiLdError):
    problem, status, title = "NonexistentTenant", 404, "Nonexistent tenant"


class NotAcceptable(NgsiLdError):
    problem, status, title = "NotAcceptable", 406, "Not acceptable"


class UnsupportedMediaType(NgsiLdError):
    problem, status, title = "UnsupportedMediaType", 415, "Unsupported media type"


class PayloadTooLarge(NgsiLdError):
    problem, status, title = "PayloadTooLarge", 413, "Payload too large"


class ServiceUnavailable(NgsiLdError):
    problem, status, title = "ServiceUnavailable", 503, "Service unavailable"


class InternalError(NgsiLdError):
    problem, status, title = "InternalError", 500, "Internal error"
