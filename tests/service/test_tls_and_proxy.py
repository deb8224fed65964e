"""The agent's link through an HTTPS proxy to a reconciler served over TLS with a private CA:
``edge-installer`` registers online through Debian's tinyproxy (a real forward proxy, on
127.0.0.1) and trusts the site's CA from ``--custom-cacert``."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.installer import main as install
from tests.service.servers import free_port
from tests.service.serving import Served
from tests.support.engine import Engine
from tests.support.services import unavailable


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    authority = _name("Test Site CA")
    ca = (
        x509.CertificateBuilder().subject_name(authority).issuer_name(authority)
        .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    cert = (
        x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(2).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([loopback]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )  # fmt: skip
    return paths


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    binary = shutil.which("tinyproxy")
    if binary is None:
        unavailable("Debian's tinyproxy is not installed (make test installs it as root)")
    port = free_port()
    # tinyproxy drops to the user nobody, who cannot reach pytest's private tmp_path
    folder = Path(tempfile.mkdtemp(prefix="edgefleet-proxy-"))
    folder.chmod(0o755)
    log = folder / "tinyproxy.log"
    log.touch()
    log.chmod(0o666)
    config = folder / "tinyproxy.conf"
    config.write_text(
        f"User nobody\nGroup nogroup\nPort {port}\nListen 127.0.0.1\nAllow 127.0.0.1\n"
        f'LogFile "{log}"\nLogLevel Connect\nTimeout 60\nMaxClients 20\n'
    )
    with (tmp_path / "tinyproxy.out").open("wb") as out:
        process = subprocess.Popen(
            [binary, "-d", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    time.sleep(0.5)
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def test_installer_registers_through_the_proxy_trusting_the_site_ca(
    served: Served,  # noqa: F811
    proxy: tuple[str, Path],
    tmp_path: Path,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca, cert, key = make_tls(tmp_path)
    served.start(
        "--listen", f"127.0.0.1:{served.port}", "--db", f"sqlite:///{served.work / 'db'}",
        "--bootstrap-token-file", str(served.work / "bootstrap"),
        "--operator-token-file", str(served.work / "operators"),
        "--signing-key", str(served.work / "signing.pem"),
        "--tls-cert", str(cert), "--tls-key", str(key),
        https_ca=ca,
    )  # fmt: skip
    proxy_url, proxy_log = proxy
    target = tmp_path / "root"
    flags = [
        "-i", "192.168.1.10", "-d", "store-1-a", "-a", f"https://127.0.0.1:{served.port}",
        "--https-proxy", proxy_url, "--target", str(target),
        "--registration-token", (served.work / "bootstrap").read_text(),
        "--server-key", str(served.work / "signing.pem.pub"), "--docker-host", engine.base_url,
    ]  # fmt: skip
    # without the site CA the reconciler's certificate is not trusted: the preflight says so
    # (through the proxy) and nothing is written
    assert install(flags) == 1
    err = capsys.readouterr().err
    assert (
        f"-a/--apiurl: https://127.0.0.1:{served.port}: its TLS certificate is not signed by the "
        f"system's CAs through the proxy {proxy_url}"
    ) in err
    assert not target.exists()

    assert install([*flags, "--custom-cacert", str(ca)]) == 0
    assert (target / "etc/edgefleet/agent-token").read_text().strip()
    assert f"CONNECT 127.0.0.1:{served.port}" in proxy_log.read_text()
