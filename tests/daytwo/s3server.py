"""An S3-compatible server on 127.0.0.1 for the backup tests: moto's server mode, run as its
own process, over TLS with a certificate from a CA made for the test, and with request
signatures checked against IAM users (moto's ``INITIAL_NO_AUTH_ACTION_COUNT``), so wrong
credentials are refused as a real server refuses them.

Why moto: no real S3-compatible server installs here. MinIO, Garage, SeaweedFS and RustFS
are in neither Debian nor PyPI as servers (PyPI's ``rustfs`` and ``alocals3`` are other
things), and Debian's ``radosgw`` needs a whole Ceph cluster (monitors and OSDs) behind it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# requests moto serves before it checks signatures: creating the IAM user, its policy, its key
UNSIGNED_REQUESTS = 3


@dataclass
class S3Server:
    endpoint: str
    ca_pem: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]

    def client(self, *, ca_file: Path) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            verify=str(ca_file),
            config=Config(s3={"addressing_style": "path"}),
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start(folder: Path) -> S3Server:
    ca_pem, cert, key = _certificates(folder)
    port = _free_port()
    log = open(folder / "moto.log", "wb")  # noqa: SIM115 - the server writes to it
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
            "--ssl-cert",
            str(cert),
            "--ssl-key",
            str(key),
        ],  # fmt: skip
        env={
            **os.environ,
            "INITIAL_NO_AUTH_ACTION_COUNT": str(UNSIGNED_REQUESTS),
            "NO_PROXY": "127.0.0.1",
        },
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    endpoint = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = (folder / "moto.log").read_text(errors="replace")[-500:]
                raise RuntimeError(f"moto server did not start: {output}") from None
            time.sleep(0.1)
    (folder / "ca.pem").write_text(ca_pem)
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        verify=str(folder / "ca.pem"),
    )
    iam.create_user(UserName="edge-backup")
    iam.put_user_policy(
        UserName="edge-backup",
        PolicyName="backups",
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",'
        ' "Action": "s3:*", "Resource": "*"}]}',
    )
    key_pair = iam.create_access_key(UserName="edge-backup")["AccessKey"]
    return S3Server(endpoint, ca_pem, key_pair["AccessKeyId"], key_pair["SecretAccessKey"], process)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _certificates(folder: Path) -> tuple[str, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgefleet test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path = folder / "server.pem"
    key_path = folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca.public_bytes(serialization.Encoding.PEM).decode(), cert_path, key_path
