"""One module per schema revision, oldest first; see :mod:`reconciler.store.migrations`."""
