"""Text from the network made safe for one log line: no control characters, bounded length.

A topic or payload excerpt with a newline or an ANSI escape could forge log lines or rewrite
a terminal; every such character is shown as a ``\\xNN`` escape instead.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean(text: str | bytes, limit: int = 200) -> str:
    """`text` cut to `limit` characters, control characters escaped (``\\n`` -> ``\\x0a``).

    Bytes are decoded as UTF-8 with invalid bytes replaced.
    """
    if isinstance(text, bytes):
        text = text[:4 * limit].decode("utf-8", errors="replace")
    cut = text[:limit]
    escaped = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", cut)
    return escaped + ("..." if len(text) > limit else "")
