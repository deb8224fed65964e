"""The Docker boundary's errors: docker-py's and requests' errors mapped, with ``raise ... from
e``, for the driver and for day-2 work alike::

    DockerError (agent.drivers.DriverError)
    ├── EngineUnreachable    temporary   the engine does not answer
    ├── ImageMissing         permanent   the image is not on the engine and cannot be pulled
    ├── Conflict             temporary   the engine's state changed under us (name in use, gone)
    ├── NameTaken            permanent   a network of that name exists and is not the agent's
    ├── EngineFailed         temporary   the engine answered with a server error
    └── EngineRefused        permanent   the engine refused the request (bad value, limits)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from agent.drivers import DriverError, Reason


class DockerError(DriverError): ...


class EngineUnreachable(DockerError, reason=Reason.ENGINE_UNREACHABLE, temporary=True): ...


class ImageMissing(DockerError, reason=Reason.IMAGE_MISSING): ...


class Conflict(DockerError, reason=Reason.CONFLICT, temporary=True): ...


class NameTaken(DockerError, reason=Reason.CONFLICT): ...


class EngineFailed(DockerError, temporary=True): ...


class EngineRefused(DockerError): ...


@contextmanager
def mapped(what: str) -> Iterator[None]:
    """Docker's and requests' errors as :class:`DockerError`, with the action in the message."""
    try:
        yield
    except DriverError:
        raise
    except ImageNotFound as e:
        raise ImageMissing(f"{what}: {explain(e)}") from e
    except APIError as e:
        if e.status_code in (404, 409):
            raise Conflict(f"{what}: {explain(e)}") from e
        if e.is_server_error():
            raise EngineFailed(f"{what}: {explain(e)}") from e
        raise EngineRefused(f"{what}: {explain(e)}") from e
    except (requests.RequestException, DockerException) as e:
        raise EngineUnreachable(f"{what}: docker engine unreachable: {e}") from e


@contextmanager
def absent_is_fine() -> Iterator[None]:
    """Inside :func:`mapped`: an object already gone is done (a missing image is not)."""
    try:
        yield
    except NotFound as e:
        if isinstance(e, ImageNotFound):
            raise


def explain(error: APIError) -> str:
    """The engine's message, one line and bounded."""
    return (error.explanation or str(error)).strip().splitlines()[0][:300]
