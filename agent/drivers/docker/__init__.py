"""The Docker driver: containerized clusters as containers, and their day-2 access."""

from agent.drivers.docker.driving import DEFAULT_IMAGE, DockerDriver, DockerSettings, connect

__all__ = ["DEFAULT_IMAGE", "DockerDriver", "DockerSettings", "connect"]
