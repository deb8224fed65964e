"""Which packages the wheel holds; every other setting is in pyproject.toml.

The code is ``reconciler`` and ``agent``. The top-level ``templates/`` (built-in packs, node
templates) and ``deploy/`` (systemd units) ship as the data packages ``edgefleet_templates``
and ``edgefleet_deploy``, which the code reads through :mod:`importlib.resources`, so an
installed edgefleet finds them wherever it was installed.
"""

from setuptools import find_packages, setup

DATA = {"edgefleet_templates": "templates", "edgefleet_deploy": "deploy"}

setup(
    packages=[*find_packages(include=["reconciler*", "agent*"]), *DATA],
    package_dir=DATA,
    package_data={
        "edgefleet_templates": ["packs/**/*", "nodes/*"],
        "edgefleet_deploy": ["*.service", "*.env"],
        "reconciler.api.dashboard": [
            "templates/*.html", "static/*.css", "static/*.js", "static/htmx/*"
        ],
    },
)
