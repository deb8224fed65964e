"""Plan over a history of sealed secrets: adding, changing and re-sealing a store's SOPS file
says "secret ..." with the file and the keys, never a value nor its ciphertext, in text,
markdown and JSON; only the site whose file changed is rendered; a secret file outside the
sites, named by a fleet profile, reaches the sites of the clusters that use the profile."""

from __future__ import annotations

from agent.secrets.keys import generate
from reconciler.cli import main
from tests.integration.test_plan_history import commit, plan
from tests.support.fleet import FleetFiles
from tests.support.secrets import (
    POS_TOKEN,
    STORE_SECRET,
    add_store_secret,
    give_recipient,
    sealed_for,
)

TOKEN, NEW_TOKEN = "enr-7f3k9q2m4x8v", "enr-0000newtoken"
SECRET_KEY = "store-1/pos/pos/pos-token.yaml"


def outputs(fleet: FleetFiles, capsys) -> str:
    text = []
    for form in ("text", "markdown", "json"):
        main(["plan", str(fleet.root), "--base", "HEAD~1", "--head", "HEAD", "--format", form])
        text.append(capsys.readouterr().out)
    return "\n".join(text)


def test_plan_says_which_keys_of_a_secret_change_and_never_a_value(
    fleet_repo: FleetFiles, capsys
) -> None:
    f = fleet_repo
    store = generate()
    add_store_secret(f, store)
    commit(f, "store-1 keeps its POS token sealed")
    p = plan(f)
    (site,) = p.sites
    assert site.name == "store-1" and p.rendered_sites == 1
    (cluster,) = site.clusters
    assert "pos/pos-token.yaml (secret added)" in cluster.manifests
    assert f"secret added (keys: stringData.token): {SECRET_KEY}\n" in site.diff
    shown = outputs(f, capsys)
    assert "secret added (keys: stringData.token)" in shown
    assert TOKEN not in shown and "ENC[" not in shown and "BEGIN AGE" not in shown

    # a new token: that key changed
    f.write(STORE_SECRET, sealed_for(store, text=POS_TOKEN.replace(TOKEN, NEW_TOKEN)))
    commit(f, "store-1: a new POS token")
    (site,) = plan(f).sites
    assert f"secret changed (keys: stringData.token): {SECRET_KEY}\n" in site.diff
    assert "pos/pos-token.yaml (secret changed)" in site.clusters[0].manifests
    shown = outputs(f, capsys)
    assert NEW_TOKEN not in shown and TOKEN not in shown and "ENC[" not in shown


def test_a_fleet_secret_outside_the_sites_reaches_the_sites_that_use_it(
    fleet_repo: FleetFiles,
) -> None:
    f = fleet_repo
    stores = {site: generate() for site in ("store-1", "restaurant-7")}
    give_recipient(f, "sites/store-1/appliances/store-1-a.yaml", stores["store-1"])
    give_recipient(f, "sites/restaurant-7/appliances/restaurant-7-a.yaml", stores["restaurant-7"])
    f.write("secrets/registry.sops.yaml", sealed_for(*stores.values()))
    f.edit(
        "profiles/store-1.0.0.yaml",
        "      manifests:\n",
        "      manifests:\n        - name: registry.yaml\n"
        "          file: ../secrets/registry.sops.yaml\n",
    )
    commit(f, "stores pull from the private registry")
    f.write(
        "secrets/registry.sops.yaml",
        sealed_for(*stores.values(), text=POS_TOKEN.replace(TOKEN, NEW_TOKEN)),
    )
    commit(f, "a new registry credential")
    p = plan(f)
    assert [s.name for s in p.sites] == ["restaurant-7", "store-1"]
    assert p.rendered_sites == 2
    for site in p.sites:
        assert "secret changed (keys: stringData.token)" in site.diff
        assert NEW_TOKEN not in site.diff
