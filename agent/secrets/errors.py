"""What goes wrong with a secret, each a one-line reason that names keys, never values::

SecretError (AgentError)
├── MalformedSecret     not a well-formed SOPS 3.x document (or an age key that is not one)
├── NoMatchingKey       none of the document's age recipients is an identity held here
├── TamperedSecret      a value or the MAC does not authenticate with the data key
├── MacMismatch         every value opens, but the MAC over them is not the recorded one
└── NothingToSeal       a plaintext document with no value the encryption rule selects
"""

from __future__ import annotations

from agent.errors import AgentError


class SecretError(AgentError):
    pass


class MalformedSecret(SecretError):
    pass


class NoMatchingKey(SecretError):
    pass


class TamperedSecret(SecretError):
    pass


class MacMismatch(SecretError):
    pass


class NothingToSeal(SecretError):
    pass
