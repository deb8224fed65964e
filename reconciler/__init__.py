"""edgefleet reconciler: turns a fleet repository into each appliance's desired state.

The package layout follows the data flow: ``sources`` (git and directories) → ``loading``
(YAML documents with positions) → ``models`` (the fleet kinds) → ``validation`` → ``packs`` →
``rendering`` → ``planning`` → ``rollout`` → ``store`` → ``api`` and ``cli``.
"""
