"""Images for the day-2 tests, made on this machine from Debian's static busybox, as the agent
tier makes its node image (no image can be pulled here).

- the node image: the agent tier's stand-in for k3s, plus ``/usr/sbin/pkg``, a stand-in
  package manager (``tools/pkg``), and ``/etc/os-release``;
- one image per scan tool, whose entrypoint (``tools/kube-bench``, ``tools/kube-hunter``,
  ``tools/sonobuoy``) checks what the real tool needs from the agent and prints a genuine
  report of the real tool (``reports/``, each named with its source in its README):
  kube-bench ``--json``, kube-hunter ``--report json``, sonobuoy's results summary.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import docker

from tests.support.daytwo import REPORTS, STAND_IN_REPORTS
from tests.support.engine import static_busybox

HERE = Path(__file__).parent
APPLETS = (
    "sh", "cat", "ls", "rm", "mkdir", "sleep", "echo", "printf", "test", "[", "touch", "grep",
    "sed", "tr", "nslookup", "true", "false", "chmod", "chown", "ln", "head", "tail", "wc", "cut",
)  # fmt: skip
OS_RELEASE = 'NAME="Edge Test OS"\nID=edgetest\nVERSION_ID=3.19.0\n'


def build(
    client: docker.DockerClient,
    tag: str,
    *,
    files: dict[str, bytes],
    cmd: list[str] | None = None,
    entrypoint: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(static_busybox(), arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for folder in ("tmp", "etc", "var/run", "usr/sbin", "usr/local/bin", "reports"):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        for path, data in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = 0o755 if "bin/" in path else 0o644
            tar.addfile(info, io.BytesIO(data))
    repository, _, version = tag.partition(":")
    changes = [f"LABEL {k}={v}" for k, v in (labels or {}).items()]
    if cmd is not None:
        changes.append(f"CMD {json.dumps(cmd)}")
    if entrypoint is not None:
        changes.append(f"ENTRYPOINT {json.dumps(entrypoint)}")
    client.api.import_image_from_data(
        archive.getvalue(), repository=repository, tag=version, changes=changes
    )
    return tag


def node_image(client: docker.DockerClient, tag: str, labels: dict[str, str]) -> str:
    return build(
        client,
        tag,
        files={
            "/usr/sbin/pkg": (HERE / "tools" / "pkg").read_bytes(),
            "/usr/local/bin/node": (HERE / "tools" / "node").read_bytes(),
            "/etc/os-release": OS_RELEASE.encode(),
        },
        cmd=["/usr/local/bin/node"],
        labels=labels,
    )


def tool_image(client: docker.DockerClient, tool: str, tag: str, labels: dict[str, str]) -> str:
    report = STAND_IN_REPORTS[tool]
    files = {
        f"/usr/local/bin/{tool}": (HERE / "tools" / tool).read_bytes(),
        f"/reports/{report}": (REPORTS / report).read_bytes(),
    }
    return build(client, tag, files=files, entrypoint=[f"/usr/local/bin/{tool}"], labels=labels)
