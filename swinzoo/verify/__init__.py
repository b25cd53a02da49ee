"""``swinzoo verify``: the zoo checked against implementations swinzoo did not write.

For each zoo entry the official checkpoint is converted (or an already converted folder, the one about to be
published, is loaded), then the SAME source file is loaded into each reference by a path that does not go
through swinzoo's official converter, and both run on the sample photographs. Compared: classification logits
(max |diff| and top-5 agreement per image), every stage's hidden state, the final normed features, and for
SimMIM the reconstruction and the loss under one fixed, seeded random mask. See docs/verification.md.

Where things are:

* ``references/``: one module per reference (``timm``, ``transformers``, ``upstream``), registered in
  ``references/__init__.py``; ``references/base.py`` says what a reference is. Add a reference there.
* ``tolerances.py``: how one output is compared, under the tolerance policy per stored dtype that
  :mod:`swinzoo.gate` holds (a verdict counts only under it). Change a tolerance there.
* ``simmim.py``, ``transformers_names.py``, ``official_state.py``: the independent reference pieces (SimMIM's mask
  and loss, the official -> transformers rename table, the official file as the references read it); they import
  nothing of swinzoo's converter.
* ``context.py``: swinzoo's outputs and what else a reference is given; ``results.py``: what it returns.
* ``orchestration.py``: :func:`verify_entry` / :func:`verify`; ``options.py``: :class:`VerifyOptions`.
* ``retargeted.py``: a retargeted folder (conversion.json's ``retarget`` record): the source moved to the folder's
  geometry and head by :mod:`swinzoo.verify.reference_retarget`, not by the converter's :mod:`swinzoo.retarget`.
* ``folder_checks.py``: a converted folder's source pin and config; ``selection.py``: names, ``--all``, shards;
  ``reporting.py``: the table, the ``--json`` summary, ``verification.json``.

A reference that cannot represent a checkpoint is reported "n/a" with the reason. It does not fail the entry by
itself, but an entry passes only when every part of it (encoder, classifier or SimMIM head) was checked by at
least one reference that passed; otherwise it is "unchecked", which fails. A missing reference library, a corrupt
image, a source that cannot be fetched: "error", which fails too.
"""

from __future__ import annotations

from .context import Context, Outputs
from .errors import VerifyError
from .options import VerifyOptions, parse_references
from .orchestration import verify, verify_entry
from .references import DEFAULT_REFERENCES, REFERENCES, LibraryReference, Reference
from .reporting import format_table, library_versions, summary, table_rows, write_json, write_verification
from .results import PARTS, EntryReport, ReferenceResult
from .selection import parse_shard, select_entries, select_shard
from .simmim import local_norm_targets, masked_l1_loss, simmim_mask
from .tolerances import TOLERANCES, Comparison, Tolerance, compare, tolerance_for, top5_agreement
from .transformers_names import official_to_transformers

__all__ = [
    "DEFAULT_REFERENCES",
    "PARTS",
    "REFERENCES",
    "TOLERANCES",
    "Comparison",
    "Context",
    "EntryReport",
    "LibraryReference",
    "Outputs",
    "Reference",
    "ReferenceResult",
    "Tolerance",
    "VerifyError",
    "VerifyOptions",
    "compare",
    "format_table",
    "library_versions",
    "local_norm_targets",
    "masked_l1_loss",
    "official_to_transformers",
    "parse_references",
    "parse_shard",
    "select_entries",
    "select_shard",
    "simmim_mask",
    "summary",
    "table_rows",
    "tolerance_for",
    "top5_agreement",
    "verify",
    "verify_entry",
    "write_json",
    "write_verification",
]
