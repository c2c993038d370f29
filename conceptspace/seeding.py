"""Seeds derived from (seed, step, purpose): stable across processes, machines and Python versions.
(Python's hash() of a str is randomised per process, so it must not be used for this.)"""

from __future__ import annotations

import hashlib


def derive_seed(*parts) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFFFFFFFFFF
