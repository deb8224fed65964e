"""The agent's errors have one root, :class:`agent.errors.AgentError`, which ``edgefleet-agent``
catches and prints as one line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from types import ModuleType

import agent
from agent.drivers import DriverError
from agent.errors import AgentError, one_line


def agent_modules() -> Iterator[ModuleType]:
    for found in pkgutil.walk_packages(agent.__path__, "agent."):
        yield importlib.import_module(found.name)


def test_every_error_the_agent_defines_has_the_one_root() -> None:
    errors = {
        f"{module.__name__}.{name}": value
        for module in agent_modules()
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    }
    assert len(errors) > 40  # every boundary's tree was found
    assert [name for name, error in errors.items() if not issubclass(error, AgentError)] == []


def test_docker_and_libvirt_errors_are_driver_errors_whatever_the_work() -> None:
    from agent.drivers.docker import errors as docker
    from agent.drivers.libvirt import errors as libvirt

    assert issubclass(docker.DockerError, DriverError)
    assert issubclass(libvirt.LibvirtError, DriverError)
    assert docker.EngineUnreachable.temporary and not docker.EngineRefused.temporary
    assert str(docker.Conflict.reason) == "Conflict"


def test_one_line_keeps_the_first_line_or_names_the_error() -> None:
    assert one_line(AgentError("first\nsecond")) == "first"
    assert one_line(AgentError()) == "AgentError"
    assert one_line(AgentError("x" * 500)) == "x" * 300
