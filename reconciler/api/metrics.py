"""Prometheus metrics, in a registry of the app's own (never the process-global one).

Figures that live in the store (revisions, reconcile durations, agents, rollout) are read
at scrape time by a collector, so they are right after a restart and across replicas; the
long-polls open are counted by this process's notifier.

    edgefleet_reconcile_duration_seconds   histogram  reconcile time of recorded revisions
    edgefleet_revisions_total{outcome}     counter    revisions recorded good / failed
    edgefleet_agents{status,health}        gauge      appliances by status and health
    edgefleet_rollout_wave{revision}       gauge      index of the open wave
    edgefleet_rollout_sites{revision,state} gauge     changed / done / failed sites
    edgefleet_rollout_progress_ratio{revision,state}  settled share of changed sites
    edgefleet_longpolls_open               gauge      desired-state requests waiting
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..delivery import DesiredDocuments, Notifier
from ..views import FleetViews
from ..views.reading import BUCKETS, Figures


class StoreCollector(Collector):
    def __init__(self, views: FleetViews) -> None:
        self._views = views

    def collect(self) -> Iterator[Metric]:
        figures = self._views.figures()
        yield _histogram(figures)
        revisions = CounterMetricFamily(
            "edgefleet_revisions", "Revisions recorded, by outcome", labels=["outcome"]
        )
        for outcome in ("good", "failed"):
            revisions.add_metric([outcome], figures.revisions.get(outcome, 0))
        yield revisions
        agents = GaugeMetricFamily(
            "edgefleet_agents", "Appliances by status and health", labels=["status", "health"]
        )
        for (status, health), count in sorted(figures.appliances.items()):
            agents.add_metric([status, health], count)
        yield agents
        wave = GaugeMetricFamily(
            "edgefleet_rollout_wave", "Index of the rollout's open wave", labels=["revision"]
        )
        sites = GaugeMetricFamily(
            "edgefleet_rollout_sites", "Sites of the rollout", labels=["revision", "state"]
        )
        progress = GaugeMetricFamily(
            "edgefleet_rollout_progress_ratio",
            "Share of the rollout's changed sites done or failed",
            labels=["revision", "state"],
        )
        rollout = figures.rollout
        if rollout is not None:
            wave.add_metric([rollout.short], rollout.wave)
            sites.add_metric([rollout.short, "changed"], rollout.changed)
            sites.add_metric([rollout.short, "done"], rollout.done)
            sites.add_metric([rollout.short, "failed"], rollout.failed)
            progress.add_metric([rollout.short, rollout.state], rollout.progress)
        yield from (wave, sites, progress)


def _histogram(figures: Figures) -> HistogramMetricFamily:
    counts = zip(BUCKETS, figures.reconcile_buckets, strict=True)
    buckets = [(str(le), float(n)) for le, n in counts]
    buckets.append(("+Inf", float(figures.reconcile_count)))
    return HistogramMetricFamily(
        "edgefleet_reconcile_duration_seconds",
        "Time from a commit to its recorded outcome",
        buckets=buckets,
        sum_value=figures.reconcile_sum,
    )


def build_registry(
    *, views: FleetViews, notifier: Notifier, documents: DesiredDocuments
) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StoreCollector(views))
    longpolls = Gauge(
        "edgefleet_longpolls_open", "Desired-state requests waiting", registry=registry
    )
    longpolls.set_function(lambda: float(notifier.waiting()))
    ahead = Gauge(
        "edgefleet_documents_made_ahead",
        "Signed documents made for appliances the rollout has yet to release",
        registry=registry,
    )
    ahead.set_function(lambda: float(documents.made_ahead()))
    return registry
