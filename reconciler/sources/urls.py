"""Repository URLs as they may be shown: the credentials a URL can carry
(``https://user:token@host/...``) are written as ``***`` before a URL, or an error that
quotes one, reaches a log, an error or an answer."""

from __future__ import annotations

import re

# scheme://userinfo@ — the userinfo (user, password or token) is what is hidden
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]+@")


def redacted(text: str) -> str:
    """``text`` (a URL, or a message quoting URLs) without the credentials in them."""
    return _USERINFO.sub(r"\1***@", text)
