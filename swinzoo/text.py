"""Plain-text output for the terminal: the aligned tables of ``swinzoo list`` and ``swinzoo verify``.

No torch here: ``swinzoo list`` prints without loading it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int] = ()) -> str:
    """Columns padded to their widest cell, two spaces apart; the columns in ``right`` (numbers) right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)
