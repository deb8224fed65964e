"""The link to the reconciler: the HTTP client, the sync loop, status reports, offline bundles."""
