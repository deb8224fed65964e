"""A node's seed: the cloud-init NoCloud CD (user data, meta-data, vendor-data, the node's join
(``join/10-join.yaml``, a k3s configuration drop-in, and ``join/token``), and, on
control-plane nodes, the cluster's manifests), built and read back with pycdlib."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from agent.contract import canonical_json
from agent.drivers.libvirt.errors import Refused

LABEL = "cidata"
MANIFESTS = "manifests"
JOIN = "join"
JOIN_CONFIG = "10-join.yaml"
JOIN_TOKEN = "token"


@dataclass(frozen=True)
class Seed:
    user_data: str
    meta_data: str
    vendor_data: str
    manifests: Mapping[str, str] = field(default_factory=dict)  # file name -> content
    join: Mapping[str, str] = field(default_factory=dict, repr=False)  # file name -> content

    def build(self) -> bytes:
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, rock_ridge="1.09", vol_ident=LABEL)
        top = (
            ("USERDATA.;1", "user-data", self.user_data),
            ("METADATA.;1", "meta-data", self.meta_data),
            ("VENDOR.;1", "vendor-data", self.vendor_data),
        )
        for iso_name, name, text in top:
            _add(iso, f"/{iso_name}", name, text.encode())
        if self.manifests:
            iso.add_directory("/MANIFEST", rr_name=MANIFESTS)
            for index, name in enumerate(sorted(self.manifests), start=1):
                _add(iso, f"/MANIFEST/F{index:05d}.;1", name, self.manifests[name].encode())
        if self.join:
            iso.add_directory("/JOIN", rr_name=JOIN)
            for index, name in enumerate(sorted(self.join), start=1):
                _add(iso, f"/JOIN/F{index:05d}.;1", name, self.join[name].encode())
        out = io.BytesIO()
        iso.write_fp(out)
        iso.close()
        return out.getvalue()

    def digest(self) -> str:
        """Changes exactly when the seed's files do (the ISO itself carries timestamps):
        names the seed volume."""
        files = {
            "user-data": self.user_data,
            "meta-data": self.meta_data,
            "vendor-data": self.vendor_data,
            MANIFESTS: dict(self.manifests),
            **({JOIN: dict(self.join)} if self.join else {}),
        }
        return hashlib.sha256(canonical_json(files)).hexdigest()


def read_seed(data: bytes) -> Seed:
    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(data))
        files = {name: _read(iso, f"/{name}") for name in ("user-data", "meta-data")}
        vendor = _read(iso, "/vendor-data") if _has(iso, "/vendor-data") else ""
        manifests = _folder(iso, MANIFESTS)
        join = _folder(iso, JOIN)
        iso.close()
    except PyCdlibException as e:
        raise Refused(f"the node's seed cannot be read back: {e}") from e
    return Seed(files["user-data"], files["meta-data"], vendor, manifests, join)


def _folder(iso: pycdlib.PyCdlib, folder: str) -> dict[str, str]:
    found: dict[str, str] = {}
    if _has(iso, f"/{folder}"):
        for child in iso.list_children(rr_path=f"/{folder}"):
            if child.is_dot() or child.is_dotdot() or not child.is_file():
                continue
            name = bytes(child.rock_ridge.name()).decode()
            found[name] = _read(iso, f"/{folder}/{name}")
    return found


def _add(iso: pycdlib.PyCdlib, iso_path: str, rr_name: str, data: bytes) -> None:
    iso.add_fp(io.BytesIO(data), len(data), iso_path, rr_name=rr_name)


def _has(iso: pycdlib.PyCdlib, rr_path: str) -> bool:
    try:
        iso.get_record(rr_path=rr_path)
    except PyCdlibException:
        return False
    return True


def _read(iso: pycdlib.PyCdlib, rr_path: str) -> str:
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, rr_path=rr_path)
    return out.getvalue().decode()
