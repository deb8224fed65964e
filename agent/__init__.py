"""edgefleet agent: runs on each appliance, pulls its desired state and applies it locally.

The agent shares only :mod:`agent.contract` with the reconciler and never imports it.
"""
