"""``edgefleet render [REPO] [--rev REV] --out DIR [--site S]``: desired states as files."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from agent.contract import DesiredState

from ..errors import FleetError
from ..rendering import Renderer, render_sites
from ..validation import check_repository
from .common import (
    UsageError,
    add_limit_options,
    builtin_packs,
    fail_usage,
    limits_of,
    open_tree,
    print_problems,
    revision_of,
)


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "render",
        help="render every appliance's desired state, manifests and user data to files",
        description=(
            "Render desired states to DIR: <site>/appliances/<id>.json (the document an agent "
            "receives), <site>/<cluster>/manifests/ and <site>/<cluster>/user-data/."
        ),
    )
    parser.add_argument("repo", nargs="?", default=".", help="repository folder (default: .)")
    parser.add_argument("--rev", help="render this git revision instead of the folder as it is")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--site", action="append", help="only this site (repeatable)")
    add_limit_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        tree = open_tree(args.repo, args.rev)
        limits = limits_of(args)
    except (UsageError, ValueError) as e:
        return fail_usage(str(e))
    checked = check_repository(tree, builtin=builtin_packs())
    if checked.diagnostics:
        print_problems(checked.diagnostics)
        return 1
    sites = args.site
    if sites:
        unknown = sorted(set(sites) - set(checked.repo.sites))
        if unknown:
            return fail_usage(f"no such site: {', '.join(unknown)}")
    try:
        rendered = render_sites(
            checked.repo,
            checked.registry,
            revision=revision_of(tree),
            sites=sites or sorted(checked.repo.sites),
            renderer=Renderer(limits),
        )
    except FleetError as e:
        print_problems(e.diagnostics)
        return 1
    files = 0
    for site, states in rendered.items():
        files += write_site(args.out / site, states)
    print(f"rendered {len(rendered)} sites, {files} files to {args.out}")
    return 0


def write_site(folder: Path, states: dict[str, DesiredState]) -> int:
    """Replace ``folder`` with the site's rendered files; returns how many were written.
    They may hold sensitive values: files are 0600 and the folders made for them 0700."""
    if folder.exists():
        shutil.rmtree(folder)
    written: dict[Path, str] = {}
    for appliance, state in states.items():
        document = state.model_dump(mode="json")
        written[folder / "appliances" / f"{appliance}.json"] = (
            json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )
        for cluster in state.clusters:
            base = folder / cluster.name
            for i, manifest in enumerate(cluster.manifests, start=1):
                name = f"{i:02d}-{manifest.pack}-{manifest.name}"
                written[base / "manifests" / name] = manifest.content
            for node in cluster.nodes:
                written[base / "user-data" / f"{node.name}.yaml"] = node.userData
    for path, text in written.items():
        _private_folder(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(text)
    return len(written)


def _private_folder(folder: Path) -> None:
    """``folder`` and the parents missing on the way, each made 0700 (those that exist
    already keep their mode: ``--out /tmp`` must not change /tmp)."""
    if folder.is_dir():
        return
    _private_folder(folder.parent)
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o700)  # whatever the umask
