"""edgefleet's agent: runs on each appliance, applies its desired state and its day-2 work.

The reconciler imports the agent's shared modules (``contract``, ``windows``,
``link.bundles``); the agent never imports the reconciler."""
