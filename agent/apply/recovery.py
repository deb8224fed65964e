"""Recovery: the steps an interrupted pass left open, settled before anything is planned. A
half-made node is removed; any other step's records are brought in line with what exists."""

from __future__ import annotations

from agent.apply.inventory import Inventory, Record
from agent.apply.journal import StepStatus
from agent.apply.passes import Event, EventKind
from agent.apply.steps import CreateNode
from agent.clocks import Clock
from agent.drivers import Driver, Observation


def recover(
    *, inventory: Inventory, driver: Driver, observed: Observation, clock: Clock
) -> tuple[Event, ...]:
    events: list[Event] = []
    for entry in inventory.open_steps():
        records = tuple(Record.from_json(value) for value in entry.resources)
        if entry.action == CreateNode.action:
            # the half-made container goes; its volumes stay, as a node restarted on them
            # keeps its data (those no node uses are swept by the next plan)
            container = next(r for r in records if r.kind == "container")
            driver.remove_node(container=container.name)
            inventory.settle_step(entry.id, StepStatus.UNDONE, at=clock.now(), forget=records)
            message = f"interrupted step {entry.title!r} undone: {container.name} removed"
            subject = container.node
        else:
            held = tuple(r for r in records if observed.holds(r.kind, r.name, r.parent))
            gone = tuple(r for r in records if r not in held)
            inventory.settle_step(
                entry.id, StepStatus.RESUMED, at=clock.now(), record=held, forget=gone
            )
            message = f"interrupted step {entry.title!r} taken up again"
            subject = records[0].name if records else entry.cluster
        events.append(Event(clock.now(), entry.cluster, EventKind.RECOVERED, subject, message))
    return tuple(events)
