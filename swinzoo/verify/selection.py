"""Which entries a run verifies: names or ``--all``, and ``--shard K/N`` (balanced by checkpoint size)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..manifest import ZooEntry, get_entry, load_manifests
from .errors import VerifyError


def as_entry(entry: ZooEntry | str) -> ZooEntry:
    """An entry given by name is looked up here, once, at the edge of the library API."""
    return get_entry(entry) if isinstance(entry, str) else entry


def select_shard(entries: Sequence[ZooEntry], shard: int, shards: int) -> list[ZooEntry]:
    """Shard ``shard`` (1-based) of ``shards``, balanced by checkpoint size; deterministic.

    Greedy: entries by decreasing ``num_params`` (then name), each onto the shard with the fewest parameters
    so far (the lowest index on a tie). The chosen entries keep their given order.
    """
    if not 1 <= shard <= shards:
        raise VerifyError(f"--shard {shard}/{shards}: K must be between 1 and N")
    loads = [0] * shards
    owner: dict[str, int] = {}
    for e in sorted(entries, key=lambda e: (-e.num_params, e.name)):
        i = min(range(shards), key=lambda s: (loads[s], s))
        loads[i] += e.num_params
        owner[e.name] = i
    return [e for e in entries if owner[e.name] == shard - 1]


def parse_shard(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value or "")
    if not m or int(m.group(2)) < 1:
        raise VerifyError(f"--shard {value!r}: expected K/N with 1 <= K <= N, e.g. 3/8")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        raise VerifyError(f"--shard {value!r}: K must be between 1 and N")
    return k, n


def select_entries(names: Sequence[str] = (), *, all_entries: bool = False, shard: str | None = None) -> list[str]:
    """Entry names to verify: the given ones (checked to exist) or the whole zoo, then the shard's subset."""
    if all_entries and names:
        raise VerifyError("give entry NAMEs or --all, not both")
    if not all_entries and not names:
        raise VerifyError("nothing to verify: give entry NAMEs, --all, or --converted FOLDER (swinzoo verify --help)")
    zoo = load_manifests()
    chosen = list(zoo.values()) if all_entries else [get_entry(n) for n in dict.fromkeys(names)]
    if shard:
        chosen = select_shard(chosen, *parse_shard(shard))
    return [e.name for e in chosen]
