"""Applying a DesiredState: admission, planning, steps, the pass itself, recovery, inventory and
journal."""
