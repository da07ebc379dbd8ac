"""Which models a process offers: ``--checkpoint`` given any number of times, plus the pretrained preview.

Kept apart from loading (what one model is) and the registry (which models are in memory): this is only the
reading of the options, so it is testable without torch. Each entry is ``NAME=REF`` or a bare ``REF`` (a local
``.pth``, ``hf://OWNER/REPO/FILE.pth`` or ``OWNER/REPO:FILE.pth``); a bare entry is named after its file, as the
single-model demo always named it. ``--keypoint-schema`` entries are ``NAME=FILE`` for one model, or a bare
``FILE`` for every checkpoint without one of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from rfdetr_demo.models.loading import PRETRAINED_NAME, ModelSpec, parse_hub_reference

# A label: letters, digits, ".", "_", "-" (what a dropdown, an API parameter and a file name can all carry).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ModelEntry:
    """One model a visitor can pick: its label and everything needed to load it."""

    name: str
    spec: ModelSpec


def split_list(text: str | None) -> list[str]:
    """Entries of a repeated option as they arrive here: joined by commas or newlines (the environment's form)."""
    return [part.strip() for part in re.split(r"[,\n]", text or "") if part.strip()]


def split_named(entry: str) -> tuple[str | None, str]:
    """``name=ref`` → (name, ref); a bare ``ref`` → (None, ref). ``=`` inside a path after a ``/`` is no name."""
    name, sep, ref = entry.partition("=")
    if sep and "/" not in name and name.strip():
        name = name.strip()
        if not _NAME.match(name):
            raise ValueError(f"model name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        return name, ref.strip()
    return None, entry.strip()


def default_name(ref: str) -> str:
    """A bare checkpoint's label: its file name (``hf://o/r/dir/m.pth`` → ``m.pth``)."""
    hub = parse_hub_reference(ref)
    return PurePosixPath(hub[1] if hub else ref.replace("\\", "/")).name or ref


def _schemas(text: str | None) -> tuple[str | None, dict[str, str]]:
    """The bare schema file (for every checkpoint) and the per-model ones."""
    shared: str | None = None
    named: dict[str, str] = {}
    for entry in split_list(text):
        name, ref = split_named(entry)
        if name is None:
            shared = ref
        else:
            named[name] = ref
    return shared, named


def model_catalog(base: ModelSpec, checkpoints: str | None, schemas: str | None, pretrained: bool) -> list[ModelEntry]:
    """The models in the order given (the first is the default), then the preview unless ``pretrained`` is off.

    ``base`` carries the shared options (device, precision, engine, resolution, Hub parts): a Hub checkpoint
    given in parts (``--hub-repo``) comes first. ``random_weights`` stands in for the pretrained download.
    """
    shared_schema, named_schemas = _schemas(schemas)
    entries: list[ModelEntry] = []
    plain = replace(base, checkpoint=None, hub_repo=None, hub_filename=None, random_weights=False)
    if base.hub_repo:
        name = default_name(base.hub_filename or base.hub_repo)
        spec = replace(base, checkpoint=None, random_weights=False, schema_path=named_schemas.get(name, shared_schema))
        entries.append(ModelEntry(name, spec))
    for item in split_list(checkpoints):
        label, ref = split_named(item)
        name = label or default_name(ref)
        schema = named_schemas.get(name, shared_schema)
        entries.append(ModelEntry(name, replace(plain, checkpoint=ref, schema_path=schema)))
    if not pretrained and not entries:
        raise ValueError("--no-pretrained needs at least one --checkpoint (there would be no model to serve)")
    if pretrained:
        # The preview's schema is COCO's own unless one is named for it (a bare schema file is for checkpoints).
        schema = named_schemas.get(PRETRAINED_NAME, shared_schema if not entries else None)
        spec = replace(plain, random_weights=base.random_weights, schema_path=schema)
        entries.append(ModelEntry(PRETRAINED_NAME, spec))
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two models are named {duplicates[0]!r}: give them labels, e.g. --checkpoint mine=PATH")
    unknown = sorted(set(named_schemas) - set(names))
    if unknown:
        raise ValueError(f"--keypoint-schema names {unknown[0]!r}, which is none of the models ({', '.join(names)})")
    return entries
