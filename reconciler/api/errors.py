"""The HTTP boundary's errors, and how every error below it becomes a status code::

    ApiError                   carries an HTTP status and a one-line detail
    ├── Unauthorized   401     no, malformed, forged or rotated token; bad webhook signature
    ├── Forbidden      403     an operator token whose role may not do this; a token bound
    │                          to another appliance
    ├── NotFound       404     unknown site; an appliance that gets no state
    ├── Conflict       409     an operator action that does not fit the rollout's state; an
    │                          appliance registered already
    ├── TooMany        429     too many discovered appliances, or registrations from one
    │                          address (Retry-After when waiting helps)
    └── Unavailable    503     the store cannot be reached (StoreError)

Mapped here too: InvalidToken → 401; WrongAppliance and NotMember → 403; RolloutConflict and
AlreadyRegistered → 409; RegistrationsLimited → 429; request validation → 422 listing what
is wrong (but never echoing the input back); oversized bodies → 413 (FastAPI's
``max_body_size``).
Bad input never reaches a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..delivery import AlreadyRegistered, InvalidToken, RegistrationsLimited, WrongAppliance
from ..rollout import NotMember, RolloutConflict
from ..store import StoreError

log = logging.getLogger(__name__)
MAX_LISTED = 20


class ApiError(Exception):
    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class TooMany(ApiError):
    status = 429

    def __init__(self, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(ApiError):
    status = 503


# each error below the boundary as the ApiError it answers with
_AS_API_ERROR: dict[type[Exception], type[ApiError]] = {
    InvalidToken: Unauthorized,
    AlreadyRegistered: Conflict,
    RolloutConflict: Conflict,
    WrongAppliance: Forbidden,
    NotMember: Forbidden,
}


def install_handlers(app: FastAPI) -> None:
    for kind in (ApiError, RegistrationsLimited, StoreError, RecursionError, *_AS_API_ERROR):
        app.add_exception_handler(kind, _handle)
    app.add_exception_handler(RequestValidationError, _invalid_request)


async def _handle(_request: Request, error: Exception) -> JSONResponse:
    answer = error_answer(error)
    assert answer is not None, f"no answer for {type(error).__name__}"
    return answer


def error_answer(error: Exception) -> JSONResponse | None:
    """The answer to an error raised below the boundary; None for one that is a bug (a 500
    with nothing of it said)."""
    if isinstance(error, StoreError):
        log.warning("store error: %s", error)
        error = Unavailable("the store is unavailable; retry later")
    elif isinstance(error, RegistrationsLimited):
        error = TooMany(str(error), retry_after=error.retry_after)
    elif isinstance(error, RecursionError):
        return JSONResponse({"detail": "request body nested too deeply"}, status_code=400)
    else:
        kind = next((k for k in _AS_API_ERROR if isinstance(error, k)), None)
        if kind is not None:
            error = _AS_API_ERROR[kind](str(error))
    if not isinstance(error, ApiError):
        return None
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
    if isinstance(error, TooMany) and error.retry_after is not None:
        headers = {"Retry-After": str(max(1, round(error.retry_after)))}
    return JSONResponse({"detail": error.detail}, status_code=error.status, headers=headers)


async def _invalid_request(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": str(e.get("msg", ""))[:200],
            "type": str(e.get("type", "")),
        }
        for e in error.errors()[:MAX_LISTED]
    ]
    return JSONResponse({"detail": problems}, status_code=422)


class ErrorBody(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no token, or one that is not known"},
    403: {"model": ErrorBody, "description": "a token whose role may not do this"},
    404: {"model": ErrorBody, "description": "not found"},
    413: {"model": ErrorBody, "description": "the request body is too large"},
}
