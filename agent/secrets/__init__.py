"""Secrets in Git: SOPS documents encrypted for age recipients, the one reading of that format.

The agent opens them with its appliance's age identity (:mod:`.opening`); the reconciler
checks them (:mod:`.documents`) and seals plaintext for the fleet's recipients
(:mod:`.sealing`) but never holds an identity. :mod:`.values` owns the AES-256-GCM values
and the MAC as SOPS writes them, :mod:`.keys` the age identities and recipients, and
:mod:`.errors` the error tree. No message of any of them ever carries a value.
"""
