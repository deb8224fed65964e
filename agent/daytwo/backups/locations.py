"""Backup locations: a folder (``file``) or any S3-compatible bucket (``s3``, credentials
from ``<credentialsRef>_ACCESS_KEY_ID`` and ``_SECRET_ACCESS_KEY``). boto3's and the file
system's errors are mapped here::

    LocationError (agent.daytwo.DayTwoError)
    ├── LocationInvalid        the parameters name no usable location (no path, unset credentials)
    ├── LocationUnreachable    the endpoint does not answer or its TLS certificate is not trusted
    ├── LocationDenied         the credentials are refused or lack permission
    ├── LocationUnwritable     the directory cannot be written, the bucket does not exist
    ├── ObjectMissing          a key that should be there is not
    └── ObjectTooLarge         an object is larger than the reader allows

A key is a relative path of plain segments: an empty, ``.`` or ``..`` segment is refused, so
no key written by a hostile manifest can leave the location's folder or prefix.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from agent.contract import BackupLocation
from agent.daytwo import DayTwoError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

PARTIAL = ".partial-"
# only the agent's own variables may be named: never AWS_..., HOME or another service's
CREDENTIALS_REF = re.compile(r"EDGEFLEET_[A-Z0-9_]{1,100}")
DENIED = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden"}
MISSING = {"NoSuchKey", "404", "NotFound"}


class LocationError(DayTwoError): ...


class LocationInvalid(LocationError): ...


class LocationUnreachable(LocationError): ...


class LocationDenied(LocationError): ...


class LocationUnwritable(LocationError): ...


class ObjectMissing(LocationError): ...


class ObjectTooLarge(LocationError): ...


class Location(Protocol):
    name: str

    def describe(self) -> str: ...

    def put(self, key: str, source: Path) -> None: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get(self, key: str, target: Path) -> None: ...

    def get_bytes(self, key: str, *, limit: int) -> bytes:
        """The object's bytes; ObjectTooLarge past ``limit``."""

    def size(self, key: str) -> int: ...

    def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (a folder: ``prefix/...``)."""

    def delete(self, keys: Sequence[str]) -> None: ...


def open_location(
    location: BackupLocation, *, environ: Mapping[str, str], ca_dir: Path
) -> Location:
    """The location a backup schedule names; ``ca_dir`` keeps the PEM files of custom CAs."""
    if location.provider == "s3":
        return _s3(location, environ=environ, ca_dir=ca_dir)
    if not location.path:
        raise LocationInvalid(f"backup location {location.name}: no path")
    return DirectoryLocation(name=location.name, root=Path(location.path))


class DirectoryLocation:
    def __init__(self, *, name: str, root: Path) -> None:
        self.name = name
        self.root = root

    def describe(self) -> str:
        return f"{self.name} (file://{self.root})"

    def put(self, key: str, source: Path) -> None:
        with self._writing(key) as partial:
            with source.open("rb") as src, partial.open("wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._writing(key) as partial, partial.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())

    def get(self, key: str, target: Path) -> None:
        with self._reading(key) as path:
            shutil.copyfile(path, target)

    def get_bytes(self, key: str, *, limit: int) -> bytes:
        with self._reading(key) as path, path.open("rb") as data:
            found = data.read(limit + 1)
        if len(found) > limit:
            raise ObjectTooLarge(f"{self.describe()}: {key} is larger than {limit} bytes")
        return found

    def size(self, key: str) -> int:
        with self._reading(key) as path:
            return path.stat().st_size

    def list(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in folder.rglob("*")
            if path.is_file() and PARTIAL not in path.name
        )

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            path = self._path(key)
            try:
                path.unlink(missing_ok=True)
                for parent in path.parents:  # empty folders the backup left
                    if parent == self.root or not parent.is_relative_to(self.root):
                        break
                    if any(parent.iterdir()):
                        break
                    parent.rmdir()
            except OSError as e:
                raise LocationUnwritable(f"{self.describe()}: delete {key}: {e.strerror}") from e

    @contextmanager
    def _writing(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        partial = path.with_name(f"{path.name}{PARTIAL}{uuid.uuid4().hex[:8]}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            yield partial
            os.replace(partial, path)
        except OSError as e:
            if partial.parent.is_dir():
                partial.unlink(missing_ok=True)
            raise LocationUnwritable(f"{self.describe()}: write {key}: {e.strerror}") from e

    @contextmanager
    def _reading(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        try:
            yield path
        except FileNotFoundError as e:
            raise ObjectMissing(f"{self.describe()}: {key} is missing") from e
        except OSError as e:
            raise LocationUnreachable(f"{self.describe()}: read {key}: {e.strerror}") from e

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)


class S3Location:
    def __init__(self, *, name: str, client: S3Client, bucket: str, endpoint: str) -> None:
        self.name = name
        self._client = client
        self._bucket = bucket
        self._endpoint = endpoint

    def describe(self) -> str:
        return f"{self.name} (s3://{self._bucket} at {self._endpoint})"

    def put(self, key: str, source: Path) -> None:
        with self._mapped(f"upload {key}"):
            self._client.upload_file(str(source), self._bucket, _checked(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._mapped(f"upload {key}"):
            self._client.put_object(Bucket=self._bucket, Key=_checked(key), Body=data)

    def get(self, key: str, target: Path) -> None:
        with self._mapped(f"download {key}"):
            self._client.download_file(self._bucket, _checked(key), str(target))

    def get_bytes(self, key: str, *, limit: int) -> bytes:
        with self._mapped(f"download {key}"):
            found = self._client.get_object(Bucket=self._bucket, Key=_checked(key))
            data = found["Body"].read(limit + 1)
            found["Body"].close()
        if len(data) > limit:
            raise ObjectTooLarge(f"{self.describe()}: {key} is larger than {limit} bytes")
        return data

    def size(self, key: str) -> int:
        with self._mapped(f"look up {key}"):
            found = self._client.head_object(Bucket=self._bucket, Key=_checked(key))
            return int(found["ContentLength"])

    def list(self, prefix: str) -> list[str]:
        folder = _checked(prefix) + "/"
        keys: list[str] = []
        with self._mapped(f"list {folder}"):
            pages = self._client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self._bucket, Prefix=folder):
                keys.extend(item["Key"] for item in page.get("Contents", []) if "Key" in item)
        return sorted(keys)

    def delete(self, keys: Sequence[str]) -> None:
        with self._mapped("delete"):
            for start in range(0, len(keys), 1000):
                batch: list[ObjectIdentifierTypeDef] = [
                    {"Key": _checked(key)} for key in keys[start : start + 1000]
                ]
                answer = self._client.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True}
                )
                errors = answer.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise LocationUnwritable(
                        f"{self.describe()}: delete {first.get('Key')}: {first.get('Code')}"
                    )

    @contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        where = f"{self.describe()}: {what}"
        try:
            yield
        except ClientError as e:
            raise _client_error(where, e) from e
        except Boto3Error as e:  # the transfer manager wraps the ClientError it met
            cause = e.__context__
            if isinstance(cause, ClientError):
                raise _client_error(where, cause) from e
            raise LocationUnreachable(f"{where}: {_first_line(e)}") from e
        except SSLError as e:
            raise LocationUnreachable(f"{where}: TLS certificate not trusted: {e}") from e
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as e:
            raise LocationUnreachable(f"{where}: {_first_line(e)}") from e
        except NoCredentialsError as e:
            raise LocationInvalid(f"{where}: no credentials") from e
        except BotoCoreError as e:
            raise LocationUnreachable(f"{where}: {_first_line(e)}") from e


def _s3(location: BackupLocation, *, environ: Mapping[str, str], ca_dir: Path) -> S3Location:
    name, bucket, ref = location.name, location.bucket, location.credentialsRef
    if not bucket:
        raise LocationInvalid(f"backup location {name}: no bucket")
    if not ref:
        raise LocationInvalid(f"backup location {name}: no credentialsRef")
    if not CREDENTIALS_REF.fullmatch(ref):
        raise LocationInvalid(
            f"backup location {name}: credentialsRef must name EDGEFLEET_ variables (got {ref!r})"
        )
    key_id = environ.get(f"{ref}_ACCESS_KEY_ID")
    secret = environ.get(f"{ref}_SECRET_ACCESS_KEY")
    for variable, value in ((f"{ref}_ACCESS_KEY_ID", key_id), (f"{ref}_SECRET_ACCESS_KEY", secret)):
        if not value:
            raise LocationInvalid(f"backup location {name}: {variable} is not set")
    verify: str | bool = True
    if location.caCert:
        verify = str(_ca_file(location.caCert, ca_dir))
    endpoint = location.endpoint or "https://s3.amazonaws.com"
    session = boto3.session.Session(
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name=location.region or "us-east-1",
    )
    config = Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
        # many S3-compatible servers reject the newer default checksums
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = session.client("s3", endpoint_url=endpoint, config=config, verify=verify)
    return S3Location(name=name, client=client, bucket=bucket, endpoint=endpoint)


def _ca_file(pem: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
    if not path.exists():
        path.write_text(pem if pem.endswith("\n") else pem + "\n")
    return path


def _client_error(where: str, error: ClientError) -> LocationError:
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    if code in MISSING or (not code and status == "404"):
        return ObjectMissing(f"{where}: not found")
    if code == "NoSuchBucket":
        return LocationUnwritable(f"{where}: the bucket does not exist")
    if code in DENIED or status == "403":
        return LocationDenied(f"{where}: access denied ({code or status})")
    message = str(details.get("Message", "")).splitlines()[:1]
    return LocationUnreachable(f"{where}: {code or status} {' '.join(message)}".rstrip())


def _checked(key: str) -> str:
    """``key`` as it is, if it is a relative path of plain segments (``a//b``, ``a/./b`` and
    ``/a`` are refused, never folded into a valid key)."""
    segments = key.split("/")
    if any(s in ("", ".", "..") or not s.isprintable() for s in segments) or len(key) > 1024:
        raise LocationInvalid(f"{key[:200]!r} is not a relative key of plain segments")
    return key


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:300]
