"""The agents' two busiest requests answered before the web framework: ``GET /v1/desired``
and ``POST /v1/status``. A wave of thousands of agents sends three each (the answer to its
long-poll, its report, its next long-poll), and the framework's routing, dependencies and
body handling cost several times the work of answering them.

Only the plain case is answered here: an agent token seen moments ago, no query but a
well-formed ``wait``, a JSON body within the size limit that reads as a StatusReport.
Anything else (an unknown token, bad input) goes on to the FastAPI routes of
:mod:`.agents`, with the body read so far handed back, and is answered there as always.
Both paths run the same :func:`~.agents.answer_desired` and :func:`~.agents.take_report`
and answer with the same bytes.
"""

from __future__ import annotations

import re

from pydantic import ValidationError
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from agent.contract import StatusReport

from .agents import answer_desired, take_report
from .auth import bearer_token
from .errors import Unauthorized, error_answer
from .services import Services

_WAIT = re.compile(rb"wait=(\d{1,6}(?:\.\d{1,6})?)")
_JSON = {b"application/json", b"application/json; charset=utf-8"}


class AgentPath:
    def __init__(self, services: Services, *, max_body_bytes: int) -> None:
        self.services = services
        self.max_body_bytes = max_body_bytes

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answer the request when it is a plain one of the two; None once answered, else
        the ``receive`` to hand on to the framework (giving back any body read)."""
        route = (scope["method"], scope["path"])
        if route == ("GET", "/v1/desired"):
            return await self._desired(scope, receive, send)
        if route == ("POST", "/v1/status"):
            return await self._status(scope, receive, send)
        return receive

    async def _desired(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        headers = _headers(scope)
        appliance = self._agent(headers)
        wait = self._wait(scope["query_string"])
        if appliance is None or wait is None:
            return receive
        if_none_match = headers.get(b"if-none-match", b"").decode("latin-1")
        try:
            response = await answer_desired(self.services, appliance, if_none_match, wait, receive)
        except Exception as e:
            response = _answer(e)
        await response(scope, receive, send)
        return None

    async def _status(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        headers = _headers(scope)
        appliance = self._agent(headers)
        if appliance is None or headers.get(b"content-type", b"").lower() not in _JSON:
            return receive
        read: list[Message] = []
        size = 0
        more = True
        while more and size <= self.max_body_bytes:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                return _handing_back(read, receive)
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        if more or size > self.max_body_bytes:
            return _handing_back(read, receive)  # the framework answers 413
        try:
            report = StatusReport.model_validate_json(b"".join(m.get("body", b"") for m in read))
        except ValidationError:
            return _handing_back(read, receive)  # the framework answers 422, or 400
        try:
            await take_report(self.services, appliance, report)
        except Exception as e:
            response: Response = _answer(e)
        else:
            response = JSONResponse({"status": "accepted"}, status_code=202)
        await response(scope, receive, send)
        return None

    def _agent(self, headers: dict[bytes, bytes]) -> str | None:
        """The appliance of a token seen moments ago (others are the framework's)."""
        try:
            token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        except Unauthorized:
            return None
        return self.services.registrations.remembered(token)

    def _wait(self, query: bytes) -> float | None:
        if not query:
            return 0.0
        found = _WAIT.fullmatch(query)
        wait = float(found.group(1)) if found else None
        return wait if wait is not None and wait <= self.services.max_wait else None


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by lower-case name, the first of each (as the framework reads
    them)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        found.setdefault(name, value)
    return found


def _handing_back(read: list[Message], receive: Receive) -> Receive:
    """``receive`` with the messages read from it first."""
    pending = list(read)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _answer(error: Exception) -> Response:
    answer = error_answer(error)
    if answer is None:
        raise error
    return answer
