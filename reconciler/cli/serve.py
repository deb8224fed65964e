"""``edgefleet serve REPO``: the reconciler service.

Options come from flags, then ``EDGEFLEET_<OPTION>`` environment variables, then a YAML
``--config`` file with the same names (``listen: 127.0.0.1:8080``), then defaults. It binds
to 127.0.0.1 unless told otherwise. A private remote repository is reached over SSH with
--git-ssh-key-file and --git-known-hosts-file, or over HTTPS with --git-password-file (and
--git-username). A configuration error is one line and exit 1, before anything starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import socket
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from agent.signatures import SignatureError, key_id, load_private_key, sign

from ..api import create_app
from ..api.connections import deadline_protocol
from ..api.operators import OperatorTokenError, OperatorTokens
from ..clocks import system_clock
from ..delivery import ChangeFeed, presigner
from ..rollout import RolloutService
from ..service import Loop, Reconciler, RemoteSource, Replica, open_source
from ..sources import AllowedSigners, Credentials, FetchFailed, SourceError
from ..store import Store, StoreError
from . import reporting
from .common import LIMIT_OPTIONS, builtin_packs, fail_usage, render_limits

log = logging.getLogger("edgefleet.serve")
FILES_KEPT = 256  # file descriptors kept for the database, git, logs and the listener
OPTIONS = {  # name: (default, help)
    "listen": ("127.0.0.1:8080", "address:port to serve on"),
    "db": ("sqlite:///edgefleet.db", "database URL: sqlite:///PATH or postgresql+psycopg://..."),
    "branch": ("main", "branch to follow"),
    "bootstrap-token-file": (None, "the fleet's bootstrap token, a file (or --no-bootstrap-token)"),
    "no-bootstrap-token": ("false", "true: appliances pair with one-time enrolment tokens only"),
    "signing-key": (None, "Ed25519 private key (edgefleet keygen) signing every state (required)"),
    "allowed-signers": (None, "ssh-keygen allowed-signers file: only commits they signed roll out"),
    "operator-token-file": (None, "file of operator tokens, one 'ROLE NAME TOKEN' a line"),
    "metrics-public": ("false", "true: /metrics answers without a token"),
    "webhook-secret-file": (None, "file holding the push webhook's HMAC secret"),
    "cache-dir": (".edgefleet-cache", "where a remote repository is cloned"),
    "fetch-interval": ("15", "seconds between fetches of a remote repository"),
    "tick-interval": ("15", "seconds between re-evaluations of rollout gates (soak, windows)"),
    "tls-cert": (None, "TLS certificate (PEM) to serve HTTPS"),
    "tls-key": (None, "TLS private key (PEM)"),
    "git-ssh-key-file": (None, "private key for an ssh:// or git@host: repository"),
    "git-known-hosts-file": (None, "known_hosts file with the SSH server's host key"),
    "git-username": (None, "user for an https:// repository (default: the URL's, or git)"),
    "git-password-file": (None, "file holding the https:// repository's token or password"),
    **reporting.OPTIONS,
    "max-discovered": ("1000", "undeclared appliances kept as discovered, at most"),
    "registrations-per-minute": ("60", "undeclared registrations and refusals per address"),
    "max-connections": (
        "20000",
        "connections (long-polls included) served at once; more are answered 503",
    ),
    "request-timeout": ("10", "seconds a request's headers and body may take to arrive"),
    "idle-timeout": ("5", "seconds an idle kept-alive connection stays open"),
    **LIMIT_OPTIONS,
}
MIN_BOOTSTRAP_TOKEN = 16


class ConfigError(Exception):
    """A file or setting serve cannot run with: one line, exit 1."""


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help="run the reconciler: follow the repository, roll out, serve the agents",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("repo", nargs="?", help="repository path or URL (or EDGEFLEET_REPO)")
    parser.add_argument("--config", type=Path, help="YAML file with any of the options")
    for name, (default, text) in OPTIONS.items():
        shown = f" (default: {default})" if default else ""
        if name in ("metrics-public", "no-bootstrap-token"):
            parser.add_argument(f"--{name}", action="store_const", const="true", help=text)
            continue
        parser.add_argument(f"--{name}", help=text + shown)
    parser.set_defaults(run=run)


def settings(args: argparse.Namespace) -> dict[str, str | None]:
    """Each option from the flag, the environment, the config file or its default."""
    from_file: dict[str, Any] = {}
    if args.config is not None:
        try:
            loaded = YAML(typ="safe").load(args.config.read_text())
        except (OSError, YAMLError) as e:
            raise ValueError(f"{args.config}: {e}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: must be a mapping of option names")
        unknown = sorted(set(loaded) - set(OPTIONS) - {"repo"})
        if unknown:
            raise ValueError(f"{args.config}: unknown options: {', '.join(unknown)}")
        from_file = loaded
    out: dict[str, str | None] = {}
    for name in [*OPTIONS, "repo"]:
        flag = getattr(args, name.replace("-", "_"))
        env = os.environ.get("EDGEFLEET_" + name.upper().replace("-", "_"))
        found = flag if flag is not None else env if env is not None else from_file.get(name)
        out[name] = str(found) if found is not None else OPTIONS.get(name, (None, ""))[0]
    return out


def _positive(value: str | None, name: str, *, whole: bool = False) -> float:
    try:
        number = float(str(value))
    except ValueError:
        number = -1.0
    if not 0 < number < float("inf") or (whole and number != int(number)):
        kind = "a positive whole number" if whole else "a positive number"
        raise ValueError(f"--{name} must be {kind} (got {value})")
    return number


def _connection_cap(wanted: int) -> int:
    """``--max-connections``, or fewer when the process may not open that many files: past
    the cap clients are answered 503, rather than connections failing with EMFILE."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted <= soft - FILES_KEPT:
        return wanted
    cap = max(soft - FILES_KEPT, 1)
    log.info("--max-connections %d is more than this process may open: %d", wanted, cap)
    return cap


def _read_secret(path: str | None, what: str, *, min_length: int = 1) -> str | None:
    if path is None:
        return None
    try:
        secret = Path(path).read_text().strip()
    except OSError as e:
        raise ConfigError(f"{what} {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path}: not text") from None
    if not secret:
        raise ConfigError(f"{what} {path} is empty")
    if len(secret) < min_length:
        raise ConfigError(
            f"{what} {path}: the token must have at least {min_length} characters "
            f"(it has {len(secret)})"
        )
    return secret


def _credentials(options: dict[str, str | None]) -> Credentials:
    def path(name: str) -> Path | None:
        value = options[name]
        return Path(value) if value else None

    return Credentials(
        ssh_key=path("git-ssh-key-file"),
        known_hosts=path("git-known-hosts-file"),
        username=options["git-username"],
        password_file=path("git-password-file"),
    )


def _signing_key(path: str | None) -> Ed25519PrivateKey:
    if path is None:
        raise ValueError(
            "--signing-key is required: agents refuse unsigned states (make one with "
            "edgefleet keygen --out KEY; agents are installed with KEY.pub)"
        )
    try:
        return load_private_key(Path(path))
    except SignatureError as e:
        raise ValueError(f"--signing-key {e}") from None


def _operators(path: str | None) -> OperatorTokens:
    return OperatorTokens() if path is None else OperatorTokens.from_file(Path(path))


def _count(value: str | None, name: str) -> int:
    if value is None or not value.strip().isdigit() or int(value) < 1:
        raise ValueError(f"--{name} must be a whole number of at least 1 (got {value})")
    return int(value)


def _flag(value: str | None, name: str) -> bool:
    text = (value or "false").strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"--{name} must be true or false (got {value})")
    return text in ("true", "1", "yes")


def _reload(operators: OperatorTokens) -> None:
    try:
        count = operators.reload()
    except OperatorTokenError as e:
        log.warning("operator tokens not reloaded, the previous ones stay: %s", e)
        return
    log.info("operator tokens reloaded: %d in force", count)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts: a port in use is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    listener.set_inheritable(True)
    return listener


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a new store's set-up steps
    try:
        options = settings(args)
        if not options["repo"]:
            raise ValueError("a repository path or URL is required")
        bootstrap = _read_secret(
            options["bootstrap-token-file"], "bootstrap token file", min_length=MIN_BOOTSTRAP_TOKEN
        )
        enrolment_only = _flag(options["no-bootstrap-token"], "no-bootstrap-token")
        if bootstrap is None and not enrolment_only:
            raise ValueError(
                "--bootstrap-token-file is required (or --no-bootstrap-token: appliances "
                "then pair with one-time tokens from edgefleet appliance enroll)"
            )
        if bootstrap is not None and enrolment_only:
            raise ValueError("--bootstrap-token-file and --no-bootstrap-token exclude each other")
        max_discovered = _count(options["max-discovered"], "max-discovered")
        per_minute = _count(options["registrations-per-minute"], "registrations-per-minute")
        webhook = _read_secret(options["webhook-secret-file"], "webhook secret file")
        signing_key = _signing_key(options["signing-key"])
        operators = _operators(options["operator-token-file"])
        metrics_public = _flag(options["metrics-public"], "metrics-public")
        host, _, port = str(options["listen"]).rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--listen must be address:port (got {options['listen']})")
        interval = _positive(options["fetch-interval"], "fetch-interval")
        tick = _positive(options["tick-interval"], "tick-interval")
        limits = render_limits(
            options["render-timeout"], options["render-memory"], options["render-output"]
        )
        connections = _positive(options["max-connections"], "max-connections", whole=True)
        request_timeout = _positive(options["request-timeout"], "request-timeout")
        idle_timeout = _positive(options["idle-timeout"], "idle-timeout", whole=True)
        source = open_source(
            str(options["repo"]),
            branch=str(options["branch"]),
            cache=Path(str(options["cache-dir"])),
            interval=interval,
            credentials=_credentials(options),
        )
        signers = (
            AllowedSigners(Path(options["allowed-signers"]))
            if options["allowed-signers"]
            else None
        )
        store = Store(str(options["db"]))
        reporter = reporting.reporter(options, store=store)
    except (ConfigError, OperatorTokenError, SourceError, StoreError) as e:
        print(f"edgefleet: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        return fail_usage(str(e))
    try:
        listener = _bind(host.strip("[]"), int(port))
    except OSError as e:
        print(f"edgefleet: cannot listen on {options['listen']}: {e.strerror}", file=sys.stderr)
        return 1
    leadership = store.leadership()
    if store.dialect == "sqlite" and not leadership.acquire():
        listener.close()
        print(
            f"edgefleet: another edgefleet serve uses {options['db']}: one process serves a "
            "SQLite database; run several replicas on PostgreSQL",
            file=sys.stderr,
        )
        return 1
    if not len(operators):
        log.warning("no operator tokens: fleet status and rollout control answer 401")
    if bootstrap is None:
        log.info("no bootstrap token: appliances pair with one-time enrolment tokens only")
    if signers is not None:
        log.info("only commits signed by a key of %s are reconciled", signers.path)
    if isinstance(source, RemoteSource):
        with suppress(FetchFailed):  # logged and shown in the fleet status; retried
            source.fetch()
    rollout = RolloutService(store=store, clock=system_clock, on_events=reporter)

    def make_loop() -> Loop:
        """The reconcile loop of a replica that has just become the leader, carrying on
        from the last good revision recorded."""
        reconciler = Reconciler(
            git=source.git,
            rollout=rollout,
            builtin=builtin_packs(),
            signers=signers,
            limits=limits,
            settle=True,
            presigner=presigner(lambda body: sign(body, signing_key)),
        )
        with store.read() as tx:
            last_good = tx.revisions.latest("good")
        if last_good is not None:
            reconciler.seed(last_good.sha)
        return Loop(source, reconciler.reconcile)

    replica = Replica(leadership=leadership, make_loop=make_loop)
    app = create_app(
        store=store,
        rollout=rollout,
        clock=system_clock,
        bootstrap_token=bootstrap,
        webhook_secret=webhook,
        on_push=lambda _event: replica.poke(),
        leading=lambda: replica.leading,
        tick_interval=tick,
        operators=operators,
        metrics_public=metrics_public,
        source=source.status if isinstance(source, RemoteSource) else lambda: None,
        signing_key=signing_key,
        max_discovered=max_discovered,
        registrations_per_minute=per_minute,
    )
    log.info("served states are signed by %s", key_id(signing_key.public_key()))
    signal.signal(signal.SIGHUP, lambda _sig, _frame: _reload(operators))
    feed = ChangeFeed(store=store, notifier=rollout.notifier).start()
    worker = threading.Thread(target=replica.run, name="replica", daemon=True)
    worker.start()
    config = uvicorn.Config(
        app,
        host=host,
        port=int(port),
        ssl_certfile=options["tls-cert"],
        ssl_keyfile=options["tls-key"],
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,  # do not wait out open long-polls
        http=deadline_protocol(request_timeout),
        limit_concurrency=_connection_cap(int(connections)),
        timeout_keep_alive=int(idle_timeout),
    )
    try:
        Server(config, on_exit=rollout.notifier.close).run(sockets=[listener])
    finally:
        replica.stop.set()
        worker.join(35)
        feed.stop()
        if reporter is not None:
            reporter.outbox.close()
    return 0


class Server(uvicorn.Server):
    """uvicorn's server, which first answers the waiting long-polls when told to stop (so
    none is cut off with an error at the graceful-shutdown timeout)."""

    def __init__(self, config: uvicorn.Config, *, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)
