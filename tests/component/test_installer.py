"""``edge-installer``: every flag checked with a one-line error, files written under --target.
Successful installs check the session's real Docker engine first (the preflight), through
DOCKER_HOST. Registration with a real reconciler is covered in tests/service; the preflight,
the seed's command lines, --dry-run and --uninstall in test_installer_preflight.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ruamel.yaml import YAML

from agent.installer import main
from agent.secrets.keys import generate, read_identities
from agent.signatures import key_id, load_public_keys, public_pem
from tests.support.engine import Engine
from tests.support.fleet import CA_PEM
from tests.support.secrets import key_file, published


@pytest.fixture
def docker_host(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DOCKER_HOST", engine.base_url)
    return engine.base_url


@pytest.fixture
def target(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "machine-id").write_text("4f1c9b2a7d3e4c5f8a9b0c1d2e3f4a5b\n")
    return root


def install(target: Path, *flags: str) -> int:
    return main([*flags, "--target", str(target)])


def test_offline_install_writes_config_and_unit(
    target: Path, tmp_path: Path, capsys, docker_host: str
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(CA_PEM + "\n")
    code = install(
        target,
        "-i", "192.168.1.10",
        "-m", "offline",
        "--pod-cidr", "10.42.0.0/16",
        "--service-cidr", "10.43.0.0/16",
        "--https-proxy", "http://proxy.store.test:3128",
        "--no-proxy", ".store.test,192.168.1.0/24",
        "--custom-cacert", str(ca),
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    config = YAML(typ="safe").load((target / "etc/edgefleet/agent.yaml").read_text())
    assert config["applianceId"] == "4f1c9b2a7d3e4c5f8a9b0c1d2e3f4a5b"  # the machine ID
    assert config["mode"] == "offline"
    assert config["podCIDR"] == "10.42.0.0/16"
    assert (target / "etc/edgefleet/ca.pem").read_text().strip() == CA_PEM
    unit = (target / "etc/systemd/system/edgefleet-agent.service").read_text()
    assert "run --config /etc/edgefleet/agent.yaml" in unit
    assert "EnvironmentFile=-/etc/edgefleet/agent.env\n" in unit
    environment = target / "etc/edgefleet/agent.env"
    assert "HTTPS_PROXY=http://proxy.store.test:3128\n" in environment.read_text()
    assert environment.stat().st_mode & 0o777 == 0o600


def test_device_id_flag_overrides_machine_id(target: Path, docker_host: str) -> None:
    assert install(target, "-i", "10.0.0.5", "-m", "offline", "-d", "hospital-1") == 0
    config = YAML(typ="safe").load((target / "etc/edgefleet/agent.yaml").read_text())
    assert config["applianceId"] == "hospital-1"


BAD_FLAGS = [
    (["-m", "offline"], "the following arguments are required: -i/--ip"),
    (["-i", "300.1.1.1", "-m", "offline"], "-i/--ip: '300.1.1.1' is not an IPv4 address"),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--pod-cidr", "10.42.0.0/33"],
        "--pod-cidr: '10.42.0.0/33' is not a CIDR like 10.42.0.0/16",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--pod-cidr", "10.42.0.1/16"],
        "--pod-cidr: '10.42.0.1/16' has host bits set like 10.42.0.0/16",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--pod-cidr", "10.42.0.0/16",
         "--service-cidr", "10.42.128.0/17"],
        "--service-cidr: 10.42.128.0/17 overlaps --pod-cidr 10.42.0.0/16",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--pod-cidr", "10.0.0.0/8"],
        "--pod-cidr: 10.0.0.0/8 holds this appliance's address 10.0.0.5 (-i/--ip)",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--http-proxy", "http://[fd00::zz]:3128"],
        "--http-proxy: 'http://[fd00::zz]:3128' is not a URL: 'fd00::zz' does not appear",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--http-proxy", "http://proxy.test:99999"],
        "--http-proxy: 'http://proxy.test:99999' is not a URL: Port out of range",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--https-proxy", "http://ops:s3cret@proxy.test:31x"],
        "--https-proxy: 'http://ops:***@proxy.test:31x' is not a URL",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--https-proxy", "http://proxy.test:3128/path"],
        "--https-proxy: 'http://proxy.test:3128/path': a proxy URL has no path",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--http-proxy", "socks5://proxy.test:1080"],
        "--http-proxy: 'socks5://proxy.test:1080' is not an http:// or https:// URL",
    ),
    (
        ["-i", "10.0.0.5", "-a", "https://ops:pw@fleet.example.test", "--registration-token", "t"],
        "-a/--apiurl: 'https://ops:***@fleet.example.test': no user info here",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--docker-host", "/var/run/docker.sock"],
        "--docker-host: '/var/run/docker.sock' is not a Docker engine address",
    ),
    (["-i", "10.0.0.5", "-m", "offline", "--purge"], "--purge goes with --uninstall"),
    (["-m", "offline", "-i", "10.0.0.5", "--", "extra"], "unrecognized arguments: extra"),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--service-cidr", "ten"],
        "--service-cidr: 'ten' is not a CIDR like 10.42.0.0/16",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--http-proxy", "proxy:3128"],
        "--http-proxy: 'proxy:3128' is not an http:// or https:// URL",
    ),
    (
        ["-i", "10.0.0.5", "-a", "fleet.example.test", "--registration-token", "t"],
        "-a/--apiurl: 'fleet.example.test' is not an http:// or https:// URL",
    ),
    (["-i", "10.0.0.5"], "-a/--apiurl is required in online mode"),
    (
        ["-i", "10.0.0.5", "-a", "http://127.0.0.1:9"],
        "--registration-token (or EDGEFLEET_REGISTRATION_TOKEN) is required in online mode",
    ),
    (
        ["-i", "10.0.0.5", "-a", "https://fleet.example.test", "--registration-token", "t"],
        "--server-key is required in online mode: states are verified",
    ),
    (
        ["-i", "10.0.0.5", "-a", "https://fleet.example.test", "--registration-token", "t",
         "--server-key", "/nonexistent/server.pem"],
        "--server-key: /nonexistent/server.pem: no such file",
    ),
    (
        ["-i", "10.0.0.5", "-a", "https://fleet.example.test", "--registration-token", "t",
         "--server-key", "{ca}"],
        "--server-key: {ca}: no Ed25519 public key (PEM) in it",
    ),
    (
        ["-i", "10.0.0.5", "-a", "http://fleet.example.test", "--registration-token", "t",
         "--server-key", "{key}"],
        "-a/--apiurl: http://fleet.example.test is http://: use https://, or --insecure-http "
        "for a lab only",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "-v", "true"],
        "-s/--sshkey and -u/--sshuser are required with -v true",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "-v", "true", "-s", "/nonexistent/key", "-u", "ops"],
        "-s/--sshkey: /nonexistent/key: no such file",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "--custom-cacert", "/nonexistent/ca.pem"],
        "--custom-cacert: /nonexistent/ca.pem: no such file",
    ),
    (
        ["-i", "10.0.0.5", "-m", "offline", "-d", "Not_An_ID"],
        "-d/--deviceid: 'Not_An_ID' is not a valid appliance ID",
    ),
    (["-i", "10.0.0.5", "-m", "sideways"], "argument -m/--mode: invalid choice: 'sideways'"),
]


@pytest.fixture
def server_key(tmp_path: Path) -> Path:
    path = tmp_path / "server.pem.pub"
    path.write_bytes(public_pem(Ed25519PrivateKey.generate()))
    return path


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS)
def test_bad_flags_exit_2_with_one_line(
    target: Path, tmp_path: Path, server_key: Path, flags: list[str], message: str
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(CA_PEM + "\n")
    files = {"ca": str(ca), "key": str(server_key)}
    flags = [flag.format(**files) for flag in flags]
    message = message.format(**files)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from agent.installer import main; sys.exit(main())",
         *flags, "--target", str(target)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert message in last
    assert "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr and ":pw@" not in done.stderr
    assert not (target / "etc/edgefleet").exists()


def test_the_appliance_gets_a_private_age_identity_and_its_recipient_is_printed(
    target: Path, capsys, docker_host: str
) -> None:
    assert install(target, "-i", "10.0.0.5", "-m", "offline", "-d", "store-7") == 0
    key = target / "var/lib/edgefleet/age-key.txt"
    assert key.stat().st_mode & 0o777 == 0o600
    (identity,) = read_identities(key)
    out = capsys.readouterr().out
    assert f"age recipient of store-7: {identity.recipient}" in out
    assert identity.secret not in out
    # installing again keeps it: secrets sealed for the appliance still open
    assert install(target, "-i", "10.0.0.5", "-m", "offline", "-d", "store-7") == 0
    assert read_identities(key) == [identity]


def test_a_site_wide_age_identity_is_taken_from_age_key(
    target: Path, tmp_path: Path, capsys, docker_host: str
) -> None:
    shared = generate()
    given = key_file(tmp_path, shared, name="site-key.txt")
    assert install(target, "-i", "10.0.0.5", "-m", "offline", "--age-key", str(given)) == 0
    key = target / "var/lib/edgefleet/age-key.txt"
    assert read_identities(key) == [shared]
    assert key.stat().st_mode & 0o777 == 0o600
    assert shared.recipient in capsys.readouterr().out


def test_an_age_key_that_is_no_identity_is_refused(target: Path, tmp_path: Path, capsys) -> None:
    wrong = tmp_path / "recipient.txt"
    wrong.write_text(published("kustomize-controller/age.yaml"))
    flags = ("-i", "10.0.0.5", "-m", "offline", "--age-key", str(wrong))
    assert install(target, *flags) == 2
    assert f"--age-key: {wrong}:1: not an age identity" in capsys.readouterr().err
    assert not (target / "etc/edgefleet").exists()


def test_bad_ca_file_fails_the_preflight(
    target: Path, tmp_path: Path, capsys, docker_host: str
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    assert install(target, "-i", "10.0.0.5", "-m", "offline", "--custom-cacert", str(ca)) == 1
    assert f"--custom-cacert: {ca}: not a PEM certificate" in capsys.readouterr().err
    assert not (target / "etc/edgefleet").exists()


def test_help_reads_like_the_flag_table(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for flag in ("-i IP, --ip IP", "-a APIURL, --apiurl APIURL", "-d DEVICEID, --deviceid",
                 "-v {true,false}, --isvirtual", "-s SSHKEY, --sshkey", "-u SSHUSER, --sshuser",
                 "-x VIRTSOCK, --virtsock", "-m {online,offline}, --mode", "--pod-cidr",
                 "--service-cidr", "--http-proxy", "--https-proxy", "--no-proxy",
                 "--custom-cacert", "--target", "--registration-token", "--server-key",
                 "--insecure-http", "--age-key FILE", "--docker-host URL", "--dry-run",
                 "--uninstall", "--purge"):  # fmt: skip
        assert flag in text


def test_the_server_key_is_installed_and_named_in_the_config(
    target: Path, server_key: Path, capsys, docker_host: str
) -> None:
    assert install(target, "-i", "10.0.0.5", "-m", "offline", "--server-key", str(server_key)) == 0
    config = YAML(typ="safe").load((target / "etc/edgefleet/agent.yaml").read_text())
    assert config["serverKey"] == "/etc/edgefleet/server-key.pem"
    assert config["insecureHttp"] is False
    installed = target / "etc/edgefleet/server-key.pem"
    assert installed.read_bytes() == server_key.read_bytes()
    (key,) = load_public_keys(installed)
    assert f"states and bundles are trusted when signed by {key_id(key)}" in capsys.readouterr().out


def test_a_file_of_two_keys_trusts_both(
    target: Path, tmp_path: Path, server_key: Path, docker_host: str
) -> None:
    both = tmp_path / "both.pem"
    both.write_bytes(server_key.read_bytes() + public_pem(Ed25519PrivateKey.generate()))
    assert install(target, "-i", "10.0.0.5", "-m", "offline", "--server-key", str(both)) == 0
    assert len(load_public_keys(target / "etc/edgefleet/server-key.pem")) == 2
