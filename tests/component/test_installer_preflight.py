"""``edge-installer`` as the seed document runs it: its command lines with a bare ``--``, the
preflight that fails with one line and nothing written (a Docker engine, libvirt, the
reconciler behind a proxy, the CA, the agent program), proxies with a login or an IPv6
address, the machine ID of the target root, the enable command printed where systemd does not
run, ``--dry-run``, ``--uninstall`` and ``--purge``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from agent.installer import main
from tests.support.engine import Engine
from tests.support.fleet import CA_PEM

MACHINE_ID = "4f1c9b2a7d3e4c5f8a9b0c1d2e3f4a5b"
WORKTREE = Path(__file__).resolve().parents[2]


@pytest.fixture
def target(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "machine-id").write_text(MACHINE_ID + "\n")
    return root


@pytest.fixture
def docker_host(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DOCKER_HOST", engine.base_url)
    return engine.base_url


def files_in(root: Path) -> list[str]:
    """What is in ``root`` besides its /etc/machine-id."""
    found = (str(p.relative_to(root)) for p in root.rglob("*"))
    return sorted(p for p in found if p not in ("etc", "etc/machine-id"))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


# -- the seed's command lines -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "-- -i 10.0.0.5 -d hospital-1 -m offline --target {target}",
        "--target {target} -- -i 10.0.0.5 -d hospital-1 -m offline",
        "-i 10.0.0.5 -- -d hospital-1 -m offline --target {target}",
        "-- -i 10.0.0.5 -d hospital-1 -m offline --target={target} --no-proxy=.hospital.test",
    ],
)
def test_the_seeds_command_lines_install(
    line: str, target: Path, docker_host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(line.format(target=target).split(), capsys)
    assert code == 0, err
    config = YAML(typ="safe").load((target / "etc/edgefleet/agent.yaml").read_text())
    assert (config["applianceId"], config["ip"]) == ("hospital-1", "10.0.0.5")
    # offline, the agent applies the bundles it is given: no service is started
    assert "offline mode: apply a bundle with: edgefleet-agent run --mode offline" in out
    assert "systemctl" not in out


def test_the_seed_line_as_a_command(target: Path, docker_host: str) -> None:
    """The installed command, as the seed writes it, exits 0 (not 2: the bare --)."""
    installer = Path(sys.executable).with_name("edge-installer")
    done = subprocess.run(
        [str(installer), "--target", str(target), "--", "-i", "10.0.0.5", "-d", "hospital-1",
         "-m", "offline", "--docker-host", docker_host],
        capture_output=True, text=True, timeout=60, cwd=WORKTREE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (target / "etc/edgefleet/agent.yaml").is_file()


# -- flags as real URLs -------------------------------------------------------------------------


def test_proxies_with_a_login_and_an_ipv6_address_are_taken_and_the_password_kept_private(
    target: Path, docker_host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["-i", "10.0.0.5", "-m", "offline", "--target", str(target),
         "--http-proxy", "http://ops:s3cret@proxy.store.test:3128",
         "--https-proxy", "http://[fd00::1]:3128", "--no-proxy", "fd00::/64,.store.test"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    config = YAML(typ="safe").load((target / "etc/edgefleet/agent.yaml").read_text())
    assert config["httpProxy"] == "http://ops:s3cret@proxy.store.test:3128"
    assert config["httpsProxy"] == "http://[fd00::1]:3128"
    environment = (target / "etc/edgefleet/agent.env").read_text()
    assert "HTTPS_PROXY=http://[fd00::1]:3128\n" in environment
    unit = target / "etc/systemd/system/edgefleet-agent.service"
    assert "s3cret" not in unit.read_text()  # the unit is world-readable
    assert unit.stat().st_mode & 0o777 == 0o644
    for private in ("agent.yaml", "agent.env", "credentials.env"):
        assert (target / "etc/edgefleet" / private).stat().st_mode & 0o777 == 0o600
    assert "s3cret" not in out + err


def test_the_machine_id_is_the_target_roots(
    tmp_path: Path, docker_host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "empty-root"
    root.mkdir()
    code, _, err = run(["-i", "10.0.0.5", "-m", "offline", "--target", str(root)], capsys)
    assert code == 2
    assert f"-d/--deviceid: not given, and {root}/etc/machine-id is missing or empty" in err
    assert files_in(root) == []  # not the machine ID of the machine running the installer


# -- the preflight: one line, exit 1, nothing written -------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_key(tmp_path: Path) -> Path:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.signatures import public_pem

    path = tmp_path / "server.pem.pub"
    path.write_bytes(public_pem(Ed25519PrivateKey.generate()))
    return path


def online(url: str, key: Path, *extra: str) -> list[str]:
    return ["-i", "10.0.0.5", "-a", url, "--registration-token", "bootstrap",
            "--server-key", str(key), *extra]  # fmt: skip


PREFLIGHT = [
    (
        "no-docker-engine",
        lambda ctx: ["-i", "10.0.0.5", "-m", "offline", "--docker-host", "unix:///nonexistent/d.sock"],
        "the Docker engine at unix:///nonexistent/d.sock does not answer: no socket "
        "/nonexistent/d.sock",
    ),
    (
        "docker-engine-not-listening",
        lambda ctx: ["-i", "10.0.0.5", "-m", "offline", "--docker-host",
                     f"tcp://127.0.0.1:{ctx['port']}"],  # fmt: skip
        "the Docker engine at tcp://127.0.0.1:{port} does not answer",
    ),
    (
        "no-libvirt",
        # no socket here, and ssh to this appliance's own address (loopback: no sshd here)
        lambda ctx: ["-i", "127.0.0.1", "-m", "offline", "-v", "true", "-s", ctx["key"], "-u",
                     "ops", "-x", "/nonexistent/libvirt-sock"],  # fmt: skip
        "libvirt over ssh (-x /nonexistent/libvirt-sock is not here): 127.0.0.1:22 does not "
        "take connections",
    ),
    (
        "reconciler-not-listening",
        lambda ctx: online(f"http://127.0.0.1:{ctx['port']}", ctx["server_key"], "--insecure-http"),
        "-a/--apiurl: http://127.0.0.1:{port} does not answer",
    ),
    (
        "proxy-name-does-not-resolve",
        lambda ctx: online("https://fleet.example.test", ctx["server_key"], "--https-proxy",
                           "http://ops:pw@proxy.does-not-exist.invalid:3128"),  # fmt: skip
        "--https-proxy: the proxy proxy.does-not-exist.invalid:3128 does not resolve",
    ),
    (
        "proxy-not-listening",
        lambda ctx: online("https://fleet.example.test", ctx["server_key"], "--https-proxy",
                           f"http://127.0.0.1:{ctx['port']}"),  # fmt: skip
        "--https-proxy: the proxy 127.0.0.1:{port} does not take connections",
    ),
    (
        "ca-does-not-parse",
        lambda ctx: ["-i", "10.0.0.5", "-m", "offline", "--custom-cacert", ctx["bad_ca"]],
        "--custom-cacert: {bad_ca}: not a PEM certificate",
    ),
]


@pytest.mark.parametrize(
    ("flags", "message"), [c[1:] for c in PREFLIGHT], ids=[c[0] for c in PREFLIGHT]
)
def test_a_failed_preflight_check_is_one_line_exit_1_and_nothing_is_written(
    flags, message: str, target: Path, tmp_path: Path, server_key: Path, docker_host: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    bad_ca = tmp_path / "ca.pem"
    bad_ca.write_text("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    ssh_key = tmp_path / "id_ed25519"
    ssh_key.write_text("key")
    ctx = {"port": closed_port(), "server_key": server_key, "key": str(ssh_key),
           "bad_ca": str(bad_ca)}  # fmt: skip
    code, out, err = run([*flags(ctx), "--target", str(target)], capsys)
    assert code == 1, out + err
    (line,) = err.strip().splitlines()
    assert line.startswith("edge-installer: ")
    assert message.format(**ctx) in line
    assert ":pw@" not in line
    assert files_in(target) == []


def test_without_the_agent_program_the_preflight_fails(
    target: Path, docker_host: str, tmp_path: Path
) -> None:
    """Run by this Python from a folder without edgefleet-agent, with none on PATH: the unit
    would run nothing, so nothing is installed."""
    folder = tmp_path / "bin"
    folder.mkdir()
    python = folder / "python3"
    python.symlink_to(os.path.realpath(sys.executable))  # outside the virtual environment
    done = subprocess.run(
        [str(python), "-c", "import sys; from agent.installer import main; sys.exit(main())",
         "-i", "10.0.0.5", "-m", "offline", "--target", str(target)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
             "DOCKER_HOST": docker_host},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"edgefleet-agent is installed neither beside edge-installer ({folder}) nor on" in line
    assert files_in(target) == []


# -- dry run, uninstall, purge ------------------------------------------------------------------


def test_dry_run_prints_every_file_and_writes_none(
    target: Path, docker_host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(CA_PEM + "\n")
    code, out, err = run(
        ["-i", "10.0.0.5", "-m", "offline", "--target", str(target), "--dry-run",
         "--custom-cacert", str(ca), "--https-proxy", "http://ops:s3cret@proxy.test:3128"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert files_in(target) == []
    for path, mode in (
        ("etc/edgefleet/agent.yaml", "0600"),
        ("etc/edgefleet/agent.env", "0600"),
        ("etc/edgefleet/credentials.env", "0600"),
        ("etc/edgefleet/ca.pem", "0644"),
        ("etc/systemd/system/edgefleet-agent.service", "0644"),
        ("var/lib/edgefleet/join-secret", "0600"),
        ("var/lib/edgefleet/age-key.txt", "0600"),
    ):
        assert f"would write {target / path} ({mode})" in out
    assert "    HTTPS_PROXY=http://ops:***@proxy.test:3128" in out
    assert "s3cret" not in out + err
    assert "would run" not in out  # offline: no service to start


@pytest.fixture
def installed(target: Path, docker_host: str, capsys: pytest.CaptureFixture[str]) -> Iterator[Path]:
    code, _, err = run(["-i", "10.0.0.5", "-m", "offline", "--target", str(target)], capsys)
    assert code == 0, err
    (target / "var/lib/edgefleet/inventory.sqlite3").write_text("the agent's")
    credentials = target / "etc/edgefleet/credentials.env"
    credentials.write_text("EDGEFLEET_ACME_S3_ACCESS_KEY_ID=AKIA\n")
    yield target


def test_installing_again_keeps_the_operators_credentials(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["-i", "10.0.0.5", "-m", "offline", "--target", str(installed)], capsys)
    assert code == 0
    credentials = installed / "etc/edgefleet/credentials.env"
    assert credentials.read_text() == "EDGEFLEET_ACME_S3_ACCESS_KEY_ID=AKIA\n"
    assert f"kept {credentials}" in out


def test_uninstall_removes_what_was_written_and_keeps_the_data(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = files_in(installed)
    code, out, _ = run(["--uninstall", "--target", str(installed), "--dry-run"], capsys)
    assert code == 0 and files_in(installed) == before
    assert f"would remove {installed / 'etc/edgefleet/agent.yaml'}" in out

    code, out, err = run(["--uninstall", "--target", str(installed)], capsys)
    assert code == 0, err
    assert "stop the agent there with: systemctl disable --now edgefleet-agent.service" in out
    assert files_in(installed) == sorted(
        [
            "etc/edgefleet",
            "etc/edgefleet/credentials.env",
            "etc/systemd",
            "etc/systemd/system",
            "var",
            "var/lib",
            "var/lib/edgefleet",
            "var/lib/edgefleet/age-key.txt",
            "var/lib/edgefleet/inventory.sqlite3",
            "var/lib/edgefleet/join-secret",
        ]
    )
    assert f"kept {installed / 'var/lib/edgefleet'}/ (the agent's data: --purge removes it)" in out


def test_purge_removes_the_data_and_the_credentials_too(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["--target", str(installed), "--", "--uninstall", "--purge"], capsys)
    assert code == 0, err
    assert files_in(installed) == ["etc/systemd", "etc/systemd/system", "var", "var/lib"]
    assert f"removed {installed / 'var/lib/edgefleet'}/ (the agent's data)" in out
