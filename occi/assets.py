"""Where the recipes and samples shipped with occi live.

In a source checkout (and an editable install) they are the top-level folders configs/,
corpora/, tokenizer/, eval/ and slurm/; a built wheel carries the same folders under
occi/assets/ (see pyproject.toml).
"""
from __future__ import annotations

from pathlib import Path

from occi.errors import OcciError

_PACKAGE = Path(__file__).resolve().parent


def asset_dir(kind: str) -> Path:
    """The folder of shipped assets of one kind (configs, corpora, tokenizer, eval, slurm)."""
    for candidate in (_PACKAGE / "assets" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise OcciError(f"occi is installed without its {kind}/ folder; reinstall the package")


def recipe_names(kind: str) -> list[str]:
    """Names of the YAML recipes shipped under `kind`/."""
    return sorted(p.stem for p in asset_dir(kind).glob("*.yaml"))


def find_recipe(kind: str, name_or_path: str) -> Path:
    """A recipe file: an existing path, or the name of a recipe shipped under `kind`/."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise OcciError(f"{path}: no such file")
        return path.resolve()
    shipped = asset_dir(kind) / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise OcciError(
        f"{name_or_path!r} is neither a file nor a {kind} recipe shipped with occi "
        f"(shipped: {', '.join(recipe_names(kind)) or 'none'})"
    )
