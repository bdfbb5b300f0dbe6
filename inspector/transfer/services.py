"""Explorations as files: export to JSON, import from it, the copy that forking makes, and a
branch's steps as CSV.

An export file holds the exploration's settings and every branch with its own steps exactly as
they were recorded (the whole top-N distribution included), parents before children. Branch ids
in a file only link children to parents; an import gets new ones. An import is checked whole
before anything is written, then written in one transaction, so a bad file leaves nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from inspector.accounts import access, audit
from inspector.errors import ServiceError
from inspector.explorations.serializers import STEP_FIELDS
from inspector.explorations.services import branch_tree
from inspector.models import Branch, Exploration, Step
from inspector.transfer.file_format import (  # split out of this module
    FORK_PREFIX,
    FORMAT,
    MAX_UPLOAD_BYTES,
    SETTINGS,
    VERSION,
    validate_file,
)

CSV_COLUMNS = (
    "index",
    "token_id",
    "text",
    "mode",
    "p_base",
    "p_final",
    "rank",
    "entropy",
    "elapsed_ms",
    "branch",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# --- Export -----------------------------------------------------------------------------------


def export_exploration(exploration: Exploration) -> dict:
    """The exploration as a JSON-safe dict (see the module docstring); import_exploration reads
    it back."""
    own_steps = defaultdict(list)
    rows = Step.objects.filter(branch__exploration=exploration).order_by("index")
    for row in rows.values("branch_id", *STEP_FIELDS):
        own_steps[row.pop("branch_id")].append(row)
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timezone.now().isoformat(),
        "exploration": {
            **{name: getattr(exploration, attr) for name, attr in SETTINGS.items()},
            # True when this exploration was itself made from a file: its distributions were
            # not recorded by the exporting server's model. (An import is always marked.)
            "imported": exploration.imported,
        },
        "branches": [
            _export_branch(branch, own_steps[branch.pk]) for branch, _ in branch_tree(exploration)
        ],
    }


def _export_branch(branch: Branch, steps: list[dict]) -> dict:
    return {
        "id": str(branch.pk),
        "parent": str(branch.parent_id) if branch.parent_id else None,
        "fork_index": branch.fork_index,
        "label": branch.label,
        "finish_reason": branch.finish_reason,
        "steps": steps,
    }


def export_filename(exploration: Exploration, ext: str, *, part: str = "") -> str:
    """A safe download name from the title (or the prompt): "the-capital-of-france.json";
    `part` adds e.g. the branch's label."""
    stem = slugify(str(exploration))[:60].strip("-") or "exploration"
    if part:
        stem = f"{stem}-{slugify(part)[:40].strip('-') or 'branch'}"
    return f"{stem}.{ext}"


def steps_csv(branch: Branch) -> str:
    """Every token of the branch (inherited ones first) as CSV, one row per token. `branch` names
    the branch that made the token; `entropy` is the recorded entropy (bits) of the distribution
    the token was chosen from."""
    labels = _labels_of_line(branch)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for step in branch.sequence():
        entropy = (step.distribution or {}).get("entropy")
        writer.writerow(
            [
                step.index,
                step.token_id,
                _safe_cell(step.text),
                step.mode,
                step.p_base,
                step.p_final,
                step.rank,
                "" if entropy is None else entropy,
                step.elapsed_ms,
                _safe_cell(labels[step.branch_id]),
            ]
        )
    return out.getvalue()


def _labels_of_line(branch: Branch) -> dict:
    """{branch id: label} of the branch and every branch it inherits from."""
    labels = {}
    while branch is not None:
        labels[branch.pk] = branch.label
        branch = branch.parent
    return labels


def _safe_cell(text: str) -> str:
    """The text, with a leading quote if a spreadsheet would read it as a formula (OWASP's
    CSV injection advice); csv quoting already protects commas, quotes and newlines."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


# --- Import and copy --------------------------------------------------------------------------


def read_upload(upload) -> object:
    """The JSON in an uploaded file, or ServiceError (field "file") saying why it is not."""
    if upload.size > MAX_UPLOAD_BYTES:
        raise ServiceError(
            f"The file is too large ({upload.size / 2**20:.1f} MB); at most "
            f"{MAX_UPLOAD_BYTES // 2**20} MB",
            "file",
        )
    try:
        return json.loads(upload.read(), parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        message = f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    except UnicodeDecodeError:
        message = "it is not UTF-8 text"
    except (ValueError, RecursionError) as exc:
        message = str(exc) or "it is nested too deeply"
    raise ServiceError(
        f"The file is not valid JSON: {message}. Choose a .json file exported from TokenLens",
        "file",
    )


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def import_exploration(data, request, *, forked_from=None, lesson=None) -> Exploration:
    """A new exploration, owned by the request's user (or visitor session), from an export
    file's content. Everything is checked first (ServiceError with the field path, e.g.
    "branches[2].steps[3].index"); then all of it is written, or nothing."""
    validated = validate_file(data)
    exploration = _write(validated, request, forked_from=forked_from, lesson=lesson, imported=True)
    steps = sum(len(branch["steps"]) for branch in validated["branches"])
    audit.record(
        request,
        "exploration.import",
        exploration,
        f"Imported “{exploration}” ({len(validated['branches'])} branches, {steps} steps)",
        branches=len(validated["branches"]),
        steps=steps,
    )
    return exploration


def copy_exploration(source: Exploration, request, *, lesson=None) -> Exploration:
    """The request's own copy of `source` (settings, branches, steps), with forked_from set:
    what forking from a lesson or a share link makes. The caller checks that the request may
    fork it."""
    validated = validate_file(export_exploration(source))
    title = str(source)
    if not title.startswith(FORK_PREFIX):
        title = f"{FORK_PREFIX}{title}"
    validated["exploration"]["title"] = title[:200]
    # A fork of an imported exploration came from that file too, and still says so.
    exploration = _write(
        validated, request, forked_from=source, lesson=lesson, imported=source.imported
    )
    audit.record(
        request,
        "exploration.fork",
        exploration,
        f"Forked “{source}”",
        source=str(source.pk),
        lesson=str(lesson.pk) if lesson else None,
    )
    return exploration


def _write(validated: dict, request, *, forked_from, lesson, imported: bool) -> Exploration:
    """Save a validated file in one transaction; branches in file order (their created_at
    order is the file's order), with new ids. `imported` marks what came from a file (its
    distributions were not recorded by this server's model)."""
    user = access.user_of(request)
    key = "" if user else access.visitor_key(request)
    with transaction.atomic():
        exploration = Exploration.objects.create(
            owner=user,
            session_key=key,
            forked_from=forked_from,
            forked_from_lesson=lesson,
            imported=imported,
            **validated["exploration"],
        )
        new_ids: dict[str, object] = {}
        steps = []
        for branch in validated["branches"]:
            row = Branch.objects.create(
                exploration=exploration,
                parent_id=new_ids.get(branch["parent"]),
                fork_index=branch["fork_index"],
                label=branch["label"],
                finish_reason=branch["finish_reason"],
            )
            new_ids[branch["id"]] = row.pk
            steps.extend(Step(branch=row, **step) for step in branch["steps"])
        Step.objects.bulk_create(steps, batch_size=500)
    return exploration
