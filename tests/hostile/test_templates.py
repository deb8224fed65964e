"""Templates that try to run forever or build gigabytes, through ``edgefleet render`` and
through ``edgefleet serve``: each fails with file:line, pack and site, within the time and
memory bounds, leaks no secret and writes nothing; the server keeps the last good state."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.service.agents import Agent
from tests.support.fleet import FleetFiles
from tests.support.git import git
from tests.support.hostile import (
    BOOTSTRAP,
    PROBE,
    SECRET,
    Served,
    assert_not_leaked,
    edgefleet,
    peak_mib,
    run_measured,
)

TIMEOUT = 2  # seconds: --render-timeout of these tests (the default is 10)
MEMORY = 128  # MiB: --render-memory of these tests (the default is 256)
LIMITS = ["--render-timeout", str(TIMEOUT), "--render-memory", str(MEMORY)]
SECONDS_BOUND = TIMEOUT + 8  # the limit, interpreter start and loading, on a busy machine
MIB_BOUND = 100 + MEMORY + 80  # the command's own ~100 MiB, the budget, Python's slack
WHERE = "(pack probe 1.0.0, site restaurant-7, cluster pos)"  # the first site rendered
OUTPUT = "1000000-character"
LINE = 7  # the payload's line in the template below


def template(payload: str) -> str:
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n  a: |\n"
    return f"{head}    {payload}\n"


# (id, payload, what the error says after "rendering limit: " or instead of it)
PAYLOADS = [
    # the payloads
    (
        "tilde-doubling",
        "{% set ns = namespace(x='ab') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}"
        "{% endfor %}{{ ns.x }}",
        f"rendering limit: a value would be larger than the {OUTPUT} output limit",
    ),
    (
        "list-plus-doubling",
        "{% set ns = namespace(x=[1]) %}{% for i in range(64) %}{% set ns.x = ns.x + ns.x %}"
        "{% endfor %}{{ ns.x|length }}",
        f"rendering limit: a value would be larger than the {OUTPUT} output limit",
    ),
    (
        "percent-width",
        '{{ "%0500000000d" % 1 }}',
        f"rendering limit: a formatted string would be larger than the {OUTPUT} output limit",
    ),
    (
        "center",
        '{{ "x"|center(500000000) }}',
        f"rendering limit: width=500000000 would be larger than the {OUTPUT} output limit",
    ),
    (
        "format-width",
        '{{ "{:>500000000}".format(1) }}',
        f"rendering limit: a format width would be larger than the {OUTPUT} output limit",
    ),
    (
        "repeated-doubling",
        "{% set ns = namespace(x='ab') %}{% for i in range(64) %}{% set ns.x = ns.x * 2 %}"
        "{% endfor %}{{ ns.x|length }}",
        f"rendering limit: a repetition would be larger than the {OUTPUT} output limit",
    ),
    (
        "nested-ranges",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        f"rendering limit: rendering took longer than the {TIMEOUT} s time limit",
    ),
    (
        "output-while-rendering",
        '{% for i in range(100000) %}{{ "x" * 900 }}{% endfor %}',
        "rendering limit: the output would be larger than the 1000000-character limit",
    ),
    # more of our own
    (
        "format-filter-width",
        '{{ "%0500000000d"|format(1) }}',
        "rendering limit: a formatted string would be larger",
    ),
    (
        "percent-star-width",
        '{{ "%*d" % (500000000, 1) }}',
        "rendering limit: a formatted string would be larger",
    ),
    (
        "nested-format-width",
        '{{ "{:>{}}".format(1, 500000000) }}',
        "rendering limit: a format width would be larger",
    ),
    (
        "format-many-fields",
        '{% set s = "x" * 900000 %}{{ ("{0}" * 1000).format(s) }}',
        "rendering limit: a formatted string would be larger",
    ),
    (
        "replace-amplifies",
        '{% set s = "x" * 100000 %}{{ s|replace("x", s) }}',
        "rendering limit: a value would be larger",
    ),
    (
        "replace-empty",
        '{% set s = "x" * 100000 %}{{ s.replace("", s) }}',
        "rendering limit: a value would be larger",
    ),
    ("indent-width", '{{ "a"|indent(500000000, true) }}', "rendering limit: a value would"),
    (
        "wordwrap-wrapstring",
        '{{ ("x" * 100000)|wordwrap(1, wrapstring="y" * 1000) }}',
        "rendering limit: a value would be larger",
    ),
    (
        "join-shared-string",
        '{% set s = "x" * 100000 %}{{ ([s] * 1000)|join }}',
        "rendering limit: a value would be larger",
    ),
    (
        "text-of-shared-list",
        '{% set s = "x" * 100000 %}{{ ([s] * 1000)|upper }}',
        "rendering limit: a value would be larger",
    ),
    (
        "output-of-shared-list",
        '{% set s = "x" * 100000 %}{{ [s] * 1000 }}',
        "rendering limit: an output would be larger",
    ),
    (
        "tojson-indent",
        "{{ [[1]]|tojson(indent=100000000) }}",
        "rendering limit: a JSON indent larger than 16",
    ),
    (
        "macro-doubling",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% else %}xxxxxxxx{% endif %}"
        "{% endmacro %}{{ f(40) }}",
        "rendering limit: ",
    ),
    (
        "self-extend",
        "{% set l = [1] %}{% for i in range(64) %}{% set _ = l.extend(l) %}{% endfor %}",
        "rendering limit: a value would be larger",
    ),
    (
        "number-squaring",
        "{% set ns = namespace(x=3) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}"
        "{% endfor %}",
        "rendering limit: a number would be too large",
    ),
    (
        "memory",
        '{% set l = [] %}{% for i in range(100000) %}{% set _ = l.append("x" * 900000 ~ i) %}'
        "{% endfor %}",
        f"rendering limit: templates built more than the {MEMORY} MiB memory limit",
    ),
    (
        "static-text-loops",
        "{% for i in range(100000) %}{% for j in range(100000) %}0123456789{% endfor %}"
        "{% endfor %}",
        "rendering limit: the output would be larger",
    ),
    (
        "block-set-loop",
        '{% set s = "x" * 900000 %}{% set y %}{% for i in range(1000) %}{{ s }}{% endfor %}'
        "{% endset %}",
        "rendering limit: the output would be larger",
    ),
    (
        "expandtabs",
        '{{ ("\\t" * 100000).expandtabs(100000) }}',
        "rendering limit: a value would be larger",
    ),
    (
        "batch-fill",
        "{{ [1]|batch(500000000, 0)|list }}",
        "rendering limit: linecount=500000000 would be larger",
    ),
    ("sum-of-lists", "{{ ([[1]] * 100000)|sum(start=[]) }}", "rendering limit: sum adds"),
    (
        "translate-amplifies",
        '{{ ("x" * 100000).translate({120: "y" * 100000}) }}',
        "rendering limit: a value would be larger",
    ),
    (
        "recursion",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "RecursionError: maximum recursion depth exceeded",
    ),
    (
        "deep-nesting",  # too deep for the parser itself
        "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
        "RecursionError: maximum recursion depth exceeded",
    ),
    (
        "secret-in-an-error",
        "{{ {}[vars.enrolToken].x }}",
        "undefined: 'dict object' has no attribute '***'",
    ),
]


@pytest.mark.parametrize(
    ("payload", "reason"), [row[1:] for row in PAYLOADS], ids=[row[0] for row in PAYLOADS]
)
def test_render_refuses_the_payload_cleanly(
    probed: FleetFiles, work: Path, payload: str, reason: str
) -> None:
    (probed.root / PROBE).write_text(template(payload))
    out = work / "out"

    command = edgefleet("render", str(probed.root), "--out", str(out), *LIMITS)

    done = run_measured(command, work=work)

    assert done.code == 1, done.out + done.err
    errors = [line for line in done.out.splitlines() if line.startswith(PROBE)]
    # rendering stops at the first site past a limit; any other error is in both store sites
    assert len(errors) == (1 if reason.startswith("rendering limit") else 2), done.out
    line = int(errors[0].split(":")[1])
    assert line in (1, LINE), errors[0]
    assert reason in errors[0], errors[0]
    assert errors[0].endswith(WHERE), errors[0]
    assert "Traceback" not in done.out + done.err
    assert not out.exists()
    assert_not_leaked(SECRET, done.out, done.err)
    assert done.seconds < SECONDS_BOUND, f"{done.seconds:.1f} s"
    assert 0 < done.peak_mib < MIB_BOUND, f"{done.peak_mib:.0f} MiB"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"kind: ConfigMap\n\xff\xfe\n", f"{PROBE}:2: template is not UTF-8 text"),
        (b"#" * (5 * 1024 * 1024), f"{PROBE}:1: template is 5242880 bytes, larger than"),
    ],
    ids=["not-utf-8", "five-megabytes"],
)
def test_render_refuses_an_unreadable_template(
    probed: FleetFiles, work: Path, content: bytes, reason: str
) -> None:
    (probed.root / PROBE).write_bytes(content)
    done = run_measured(edgefleet("render", str(probed.root), "--out", str(work / "o")), work=work)
    assert done.code == 1
    assert reason in done.out, done.out
    assert "Traceback" not in done.out + done.err


def test_plan_applies_the_same_limits(probed: FleetFiles, work: Path) -> None:
    base = _head(probed)
    (probed.root / PROBE).write_text(template('{{ "x"|center(500000000) }}'))
    head = _commit(probed, "a template that builds half a gigabyte")

    done = run_measured(
        edgefleet("plan", str(probed.root), "--base", base, "--head", head, *LIMITS), work=work
    )

    assert done.code == 1
    assert f"{PROBE}:{LINE}: rendering limit: width=500000000" in done.out
    assert "Traceback" not in done.out + done.err
    assert 0 < done.peak_mib < MIB_BOUND


def test_a_bad_limit_option_is_a_usage_error(probed: FleetFiles, work: Path) -> None:
    done = run_measured(
        edgefleet("render", str(probed.root), "--out", str(work / "o"), "--render-timeout", "0"),
        work=work,
    )
    assert done.code == 2
    assert "--render-timeout must be a positive number (got 0)" in done.err


# Through the server: one server, one commit per payload; each fails with its reason and the
# agents keep the state they had.
SERVER_PAYLOADS = [row for row in PAYLOADS if row[0] in {
    "tilde-doubling", "percent-width", "center", "format-width", "nested-ranges",
    "output-while-rendering", "memory", "macro-doubling", "secret-in-an-error",
}]  # fmt: skip
SERVER_MIB_BOUND = 160 + MEMORY + 100  # the server's own memory, the budget, slack


def test_the_server_fails_each_payload_commit_and_keeps_the_last_good_state(
    served: Served,
) -> None:
    served.start(*LIMITS)
    agent = Agent(served.url, "store-1-a", bootstrap=BOOTSTRAP)
    assert agent.register().status_code == 200
    good = agent.digest()
    assert good is not None
    probe = served.fleet.root / PROBE
    answering = _Watch(served.url)
    try:
        for name, payload, reason in SERVER_PAYLOADS:
            probe.write_text(template(payload))
            started = time.monotonic()
            sha = served.commit(f"hostile: {name}")

            outcome, errors = served.outcome(sha)

            took = time.monotonic() - started
            assert outcome == "failed", name
            assert len(errors) == (1 if reason.startswith("rendering limit") else 2), errors
            assert errors[0].startswith(f"{PROBE}:"), errors[0]
            assert reason in errors[0] and errors[0].endswith(WHERE), errors[0]
            assert took < SECONDS_BOUND, f"{name}: {took:.1f} s"
            assert agent.digest() == good, name
        assert peak_mib(served.pid) < SERVER_MIB_BOUND, f"{peak_mib(served.pid):.0f} MiB"
        assert answering.slowest < 1.0, f"/healthz took {answering.slowest:.2f} s"

        probe.write_text(template("{{ values.greeting }}"))
        outcome, _ = served.outcome(served.commit("a good template again"))
        assert outcome == "good"
    finally:
        answering.stop()
        agent.close()
    assert_not_leaked(SECRET, served.log(), str(served.status()))
    assert "Traceback" not in served.log()


class _Watch:
    """Asks /healthz every 100 ms while the server reconciles: the API must stay responsive
    while a template runs to its limit in the reconcile thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.slowest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.wait(0.1):
                started = time.monotonic()
                client.get("/healthz")
                self.slowest = max(self.slowest, time.monotonic() - started)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def _head(fleet: FleetFiles) -> str:
    return git(fleet.root, "rev-parse", "HEAD")


def _commit(fleet: FleetFiles, message: str) -> str:
    git(fleet.root, "add", "-A")
    git(fleet.root, "commit", "-qm", message)
    return git(fleet.root, "rev-parse", "HEAD")
