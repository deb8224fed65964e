"""`make run`: the whole loop on this machine, on embedded defaults.

Copies fleet-example into a temporary git repository, starts `edgefleet serve` on 127.0.0.1
(SQLite) and an agent for each appliance of its containerized sites against the local Docker
engine (started when none runs), then shows the fleet converging with `edgefleet status`
until every containerized cluster runs, and cleans up. Nothing can be pulled from a registry
here, so a small node image is built locally (from Debian's busybox-static) and the example's
containerized clusters are pointed at it by a commit, the way an operator would change it.
The stores' agents get the example appliances' published age identities (demo-age-keys/), as
edge-installer would have written them, so the stores' sealed secrets open.

    .venv/bin/python scripts/demo.py [--port 8080] [--timeout 120] [--keep]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import AGE_KEY_NAME, AgentConfig  # noqa: E402
from agent.secrets.keys import write_private  # noqa: E402
from tests.support.appliances import remove_labelled  # noqa: E402
from tests.support.engine import build_node_image, find_or_start_engine, stop_engine  # noqa: E402

IMAGE = "edgefleet-demo-node:latest"
LABEL = "edgefleet.demo=1"
TOKEN = "demo-bootstrap-token-0001"
AGE_KEYS = ROOT / "scripts" / "demo-age-keys"


def git(repo: Path, *args: str) -> None:
    who = {"NAME": "edgefleet demo", "EMAIL": "demo@localhost"}
    env = {**os.environ, **{f"GIT_{role}_{k}": v for role in ("AUTHOR", "COMMITTER")
                            for k, v in who.items()}}  # fmt: skip
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def containerized(fleet: Path) -> dict[Path, list[str]]:
    """Cluster files of containerized clusters, with their appliances."""
    yaml = YAML(typ="safe")
    kinds = {
        yaml.load(p.read_text())["metadata"]["name"]: yaml.load(p.read_text())["spec"]["type"]
        for p in fleet.glob("sites/*/appliances/*.yaml")
    }
    found = {}
    for path in sorted(fleet.glob("sites/*/clusters/*.yaml")):
        spec = yaml.load(path.read_text())["spec"]
        appliances = sorted({a for pool in spec["nodePools"] for a in pool["appliances"]})
        if all(kinds.get(a) != "bare-metal-libvirt" for a in appliances):
            found[path] = appliances
    return found


def demo_settings(fleet: Path, clusters: dict[Path, list[str]]) -> None:
    """The local node image for containerized clusters, and a 10 s soak instead of hours."""
    yaml = YAML()  # round trip: comments stay
    yaml.preserve_quotes = True
    fleet_yaml = fleet / "fleet.yaml"
    document = yaml.load(fleet_yaml.read_text())
    document["spec"]["rollout"]["soak"] = "10s"
    with fleet_yaml.open("w") as out:
        yaml.dump(document, out)
    for path in clusters:
        document = yaml.load(path.read_text())
        packs = document["spec"].setdefault("packs", {})
        packs.setdefault("k3s", {}).setdefault("values", {})["nodeImage"] = IMAGE
        with path.open("w") as out:
            yaml.dump(document, out)


def free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A background process with its output in ``log``, never this terminal's pipe."""
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def converged(url: str, sites: set[str], token: str) -> bool:
    try:
        headers = {"Authorization": f"Bearer {token}"}
        fleet = httpx.get(f"{url}/v1/fleet", timeout=5, headers=headers).json()
    except (httpx.HTTPError, ValueError):
        return False
    running = {
        s["name"]
        for s in fleet.get("sites", [])
        if s["clusters"]
        and all(c["phase"] == "Running" for c in s["clusters"])
        and s["health"] == "healthy"
    }
    return sites <= running


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--keep", action="store_true", help="keep running until Ctrl-C")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edgefleet-demo-"))
    print(f"working in {work}")
    engine = find_or_start_engine()
    client = engine.client()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        print(f"docker engine at {engine.base_url}; building the local node image {IMAGE}")
        build_node_image(client, IMAGE)
        fleet = work / "fleet"
        shutil.copytree(ROOT / "fleet-example", fleet)
        git(fleet, "init", "-q", "-b", "main")
        git(fleet, "add", "-A")
        git(fleet, "commit", "-qm", "fleet-example")
        clusters = containerized(fleet)
        demo_settings(fleet, clusters)
        git(fleet, "commit", "-qam", "demo: the locally built node image, a 10 s soak")
        port = free_port(args.port)
        url = f"http://127.0.0.1:{port}"
        (work / "bootstrap-token").write_text(TOKEN)
        # the key that signs every served state; the agents are installed with its .pub
        subprocess.run([sys.executable, "-m", "reconciler", "keygen", "--out",
                        str(work / "signing.pem")], check=True, capture_output=True)  # fmt: skip
        # the operator's token: `edgefleet status` and `edgefleet rollout` present it
        operator = secrets.token_urlsafe(32)
        tokens = work / "operator-tokens"
        tokens.write_text(f"# ROLE NAME TOKEN\nadmin demo {operator}\n")
        tokens.chmod(0o600)
        os.environ["EDGEFLEET_TOKEN"] = operator
        edgefleet = [sys.executable, "-m", "reconciler"]
        processes.append(start(
            [*edgefleet, "serve", str(fleet), "--listen", f"127.0.0.1:{port}",
             "--db", f"sqlite:///{work / 'reconciler.db'}",
             "--bootstrap-token-file", str(work / "bootstrap-token"), "--tick-interval", "1",
             "--operator-token-file", str(tokens), "--signing-key", str(work / "signing.pem")],
            work / "reconciler.log",
        ))  # fmt: skip
        for appliance in sorted({a for appliances in clusters.values() for a in appliances}):
            data = work / "agents" / appliance
            AgentConfig(
                applianceId=appliance, ip="127.0.0.1", apiUrl=url, tokenFile=str(data / "token"),
                dataDir=str(data), dockerUrl=engine.base_url, defaultImage=IMAGE,
                privileged=False, serverCommand=None, agentCommand=None, pull="never",
                labels={"edgefleet.demo": "1"}, serverKey=str(work / "signing.pem.pub"),
                insecureHttp=True,  # a lab: the reconciler serves http on 127.0.0.1
            ).save(data / "agent.yaml")  # fmt: skip
            identity = AGE_KEYS / f"{appliance}.txt"
            if identity.is_file():  # what edge-installer writes: the appliance's own key, 0600
                write_private(data / AGE_KEY_NAME, identity.read_text())
            processes.append(start(
                [sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main())",
                 "run", "--config", str(data / "agent.yaml"), "--wait", "5"],
                work / f"agent-{appliance}.log", env={"EDGEFLEET_REGISTRATION_TOKEN": TOKEN},
            ))  # fmt: skip
        sites = {path.parts[-3] for path in clusters}
        print(f"reconciler on {url}; agents for {', '.join(sorted(sites))}")
        print(f"operator token (admin) in {tokens}: export EDGEFLEET_TOKEN=$(awk '/^admin/ "
              f"{{print $3}}' {tokens})")  # fmt: skip
        print(f"dashboard at {url}/ (log in with that token)\n")
        started = time.monotonic()
        while time.monotonic() - started < args.timeout:
            done = converged(url, sites, operator)
            subprocess.run([*edgefleet, "status", "--server", url], check=False)
            if done:
                took = time.monotonic() - started
                print(f"\nconverged in {took:.1f} s: every containerized cluster runs")
                print("(the hospital's virtualized cluster has no agent in this demo)")
                break
            print()
            time.sleep(5)
        else:
            print(f"\nnot converged after {args.timeout:.0f} s; logs are in {work}")
            return 1
        if args.keep:
            print(f"\nstill serving on {url}; with EDGEFLEET_TOKEN set as above try "
                  f"edgefleet status --server {url}, edgefleet rollout pause --server {url}; "
                  "Ctrl-C stops")  # fmt: skip
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        remove_labelled(client, LABEL)
        client.close()
        stop_engine(engine)


if __name__ == "__main__":
    sys.exit(main())
