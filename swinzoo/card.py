"""Model card for a converted folder (README.md), built with huggingface_hub's ModelCard."""

from __future__ import annotations

import json
from pathlib import Path


def write_card(folder: str | Path) -> Path:
    """Write README.md from the folder's config.json, conversion.json and (if present) verification.json."""
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    conversion = json.loads((folder / "conversion.json").read_text())
    data = ModelCardData(license="mit", library_name="swinzoo", tags=["swinzoo", "swin-transformer"])
    body = (
        f"---\n{data.to_yaml()}\n---\n\n# {conversion.get('entry') or folder.name}\n\n"
        f"Converted by swinzoo {conversion['swinzoo_version']} from `{conversion['source']}` "
        f"(sha256 `{conversion['source_sha256']}`) with the `{conversion['converter']}` converter.\n"
    )
    path = folder / "README.md"
    ModelCard(body).save(path)
    return path
