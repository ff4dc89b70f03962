"""One way to hash a configuration, used by every model family, export and pipeline task."""

from __future__ import annotations

import hashlib
import json


def canonical_hash(values) -> str:
    """SHA-256 hex digest of ``values`` as canonical JSON (sorted keys, no spaces, no NaN)."""
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
