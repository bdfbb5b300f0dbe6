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

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from rest_framework import serializers

from inspector import access, audit, services
from inspector.explorations import branch_tree
from inspector.fields import StrictCharField, StrictFloatField, StrictModelSerializer, storable_json
from inspector.models import Branch, Exploration, Step
from inspector.serializers import STEP_FIELDS, ExplorationSerializer
from inspector.services import ServiceError

FORMAT = "tokenlens.exploration"
VERSION = 1
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 2**16  # the file and its multipart envelope
MAX_TOKEN_ID = 2**31 - 1  # what the database's token_id (and rank) column holds
FORK_PREFIX = "Fork of "
SETTINGS = {
    "title": "title",
    "model": "model_key",
    "prompt": "prompt",
    "system_prompt": "system_prompt",
    "use_chat_template": "use_chat_template",
    "params": "params",
    "max_new_tokens": "max_new_tokens",
    "stop": "stop",
    "constraint": "constraint",
}
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


# --- Validation -------------------------------------------------------------------------------


class ExplorationSettingsSerializer(ExplorationSerializer):
    """An exploration's settings in a file, checked exactly as when one is created."""

    branches = None

    class Meta(ExplorationSerializer.Meta):
        fields = list(SETTINGS)


def _probability() -> StrictFloatField:
    return StrictFloatField(
        min_value=0.0,
        max_value=1.0,
        error_messages={
            "min_value": "A probability is between 0 and 1",
            "max_value": "A probability is between 0 and 1",
        },
    )


class StepFileSerializer(StrictModelSerializer):
    """One recorded step. The JSON parts (piece, distribution, params) are kept as they are."""

    index = serializers.IntegerField(min_value=0)
    token_id = serializers.IntegerField(
        min_value=0,
        max_value=MAX_TOKEN_ID,
        error_messages={
            "min_value": f"A token id is between 0 and {MAX_TOKEN_ID}",
            "max_value": f"A token id is between 0 and {MAX_TOKEN_ID}",
        },
    )
    text = StrictCharField(max_length=300, allow_blank=True, trim_whitespace=False)
    mode = serializers.ChoiceField(
        choices=Step.Mode.choices,
        error_messages={
            "invalid_choice": "A step's mode is sampled, greedy or forced, not {input!r}"
        },
    )
    piece = serializers.DictField(required=False, default=dict, validators=[storable_json])
    p_base = _probability()
    p_final = _probability()
    rank = serializers.IntegerField(
        min_value=0,
        max_value=MAX_TOKEN_ID,
        error_messages={
            "min_value": f"A rank is between 0 and {MAX_TOKEN_ID}",
            "max_value": f"A rank is between 0 and {MAX_TOKEN_ID}",
        },
    )
    distribution = serializers.DictField(validators=[storable_json])
    params = serializers.DictField(required=False, default=dict, validators=[storable_json])
    elapsed_ms = StrictFloatField(min_value=0.0, required=False, default=0.0)

    class Meta:
        model = Step
        fields = list(STEP_FIELDS)

    def validate_distribution(self, distribution: dict) -> dict:
        """The parts the pages read: candidates are objects with probabilities in [0, 1]."""
        tokens = distribution.get("tokens", [])
        chosen = distribution.get("chosen") or {}
        candidates = [*tokens, chosen] if isinstance(tokens, list) else [None]
        if not all(isinstance(candidate, dict) for candidate in candidates):
            raise serializers.ValidationError(
                "The distribution's tokens are a list of objects, and its chosen one an object"
            )
        for candidate in candidates:
            for name in ("p_base", "p_final"):
                value = candidate.get(name, 0)
                if not isinstance(value, int | float) or not 0 <= value <= 1:
                    raise serializers.ValidationError(
                        f"A candidate's {name} is a probability between 0 and 1, not {value!r}"
                    )
        return distribution


class BranchFileSerializer(serializers.Serializer):
    id = StrictCharField(max_length=64, help_text="Links children to parents only")
    parent = StrictCharField(max_length=64, allow_null=True, default=None)
    fork_index = serializers.IntegerField(min_value=0, default=0)
    label = StrictCharField(max_length=100, trim_whitespace=False)
    finish_reason = StrictCharField(max_length=32, allow_blank=True, default="")
    steps = StepFileSerializer(many=True, help_text="The branch's own steps, in order")


class ExplorationFileSerializer(serializers.Serializer):
    """A TokenLens exploration file (format tokenlens.exploration, version 1)."""

    format = serializers.ChoiceField(choices=[FORMAT])
    version = serializers.IntegerField()
    exported_at = serializers.DateTimeField(read_only=True)
    exploration = ExplorationSettingsSerializer()
    branches = BranchFileSerializer(many=True, help_text="Parents before their children")


def error_path(detail, path: str = "") -> tuple[str, str]:
    """The first (field path, message) of a DRF error tree, with list positions in brackets:
    ("branches[2].steps[3].index", "...")."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if value:
                where = path if key == "non_field_errors" else _join(path, key)
                return error_path(value, where)
    if isinstance(detail, list):
        for position, value in enumerate(detail):
            if isinstance(value, dict | list):
                if value:
                    return error_path(value, f"{path}[{position}]")
            else:
                return path or "non_field_errors", str(value)
    return path or "non_field_errors", str(detail)


def _join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def validate_file(data) -> dict:
    """The file's validated content, or ServiceError naming the first problem and where it is."""
    _check_envelope(data)
    serializer = ExplorationFileSerializer(data=data)
    if not serializer.is_valid():
        field, message = error_path(serializer.errors)
        raise ServiceError(message, field)
    validated = serializer.validated_data
    _check_tree(validated["branches"])
    _check_vocabulary(validated)
    return validated


def _check_envelope(data) -> None:
    """What is wrong before looking at fields: not a TokenLens file, another version, too big."""
    if not isinstance(data, dict):
        kind = type(data).__name__.replace("NoneType", "null")
        raise ServiceError(f"An exploration file is a JSON object, not a {kind}")
    if data.get("format") != FORMAT:
        raise ServiceError(
            f"This is not a TokenLens exploration file: its format is {data.get('format')!r}, "
            f"expected {FORMAT!r}",
            "format",
        )
    version = data.get("version")
    if version is None:
        raise ServiceError(
            f"The file does not say its version; this TokenLens reads version {VERSION}", "version"
        )
    if version != VERSION or isinstance(version, bool):
        raise ServiceError(
            f"This file is version {version}; this TokenLens reads version {VERSION}", "version"
        )
    _check_sizes(data.get("branches"))


def _check_sizes(branches) -> None:
    if not isinstance(branches, list) or not branches:
        raise ServiceError("The file has no list of branches", "branches")
    limit = settings.TOKENLENS_MAX_BRANCHES
    if len(branches) > limit:
        raise ServiceError(
            f"The file has {len(branches)} branches; an exploration has at most {limit}",
            "branches",
        )
    steps_limit = settings.TOKENLENS_MAX_STEPS_PER_BRANCH
    for position, branch in enumerate(branches):
        steps = branch.get("steps") if isinstance(branch, dict) else None
        if isinstance(steps, list) and len(steps) > steps_limit:
            raise ServiceError(
                f"This branch has {len(steps):,} steps; a branch has at most {steps_limit:,}",
                f"branches[{position}].steps",
            )


def _check_tree(branches: list[dict]) -> None:
    """Unique ids, one root, parents before children, forks within the parent, and each
    branch's own steps numbered on from its fork_index without gaps."""
    _check_ids(branches)
    ids = {branch["id"] for branch in branches}
    lengths: dict[str, int] = {}
    for position, branch in enumerate(branches):
        where = f"branches[{position}]"
        _check_parent(branch, lengths, ids, where)
        for number, step in enumerate(branch["steps"]):
            expected = branch["fork_index"] + number
            if step["index"] != expected:
                raise ServiceError(
                    f"Expected index {expected}, got {step['index']}: a branch's own steps are "
                    f"numbered on from its fork_index ({branch['fork_index']}) without gaps",
                    f"{where}.steps[{number}].index",
                )
        length = branch["fork_index"] + len(branch["steps"])
        if length > settings.TOKENLENS_MAX_STEPS_PER_BRANCH:
            raise ServiceError(
                f"This branch has {length:,} tokens; a branch has at most "
                f"{settings.TOKENLENS_MAX_STEPS_PER_BRANCH:,}",
                f"{where}.steps",
            )
        lengths[branch["id"]] = length


def vocabulary_size(model_key: str) -> int | None:
    """The model's vocabulary size as the catalog knows it without loading the model (from the
    prepared copy's config, or from a worker that has it loaded); None when not known yet."""
    entry = next((entry for entry in services.catalog_entries() if entry["key"] == model_key), {})
    return entry.get("vocab_size") or None


def _check_vocabulary(validated: dict) -> None:
    """Every step's token is in the model's vocabulary: a branch holding one outside it could
    never be stepped again. Skipped when the vocabulary's size is not known without loading
    the model (the database bound of MAX_TOKEN_ID still holds)."""
    model_key = validated["exploration"]["model_key"]
    size = vocabulary_size(model_key)
    if size is None:
        return
    for position, branch in enumerate(validated["branches"]):
        for number, step in enumerate(branch["steps"]):
            if step["token_id"] >= size:
                raise ServiceError(
                    f"Token id {step['token_id']} is not in the vocabulary of {model_key} "
                    f"(ids 0 to {size - 1})",
                    f"branches[{position}].steps[{number}].token_id",
                )


def _check_ids(branches: list[dict]) -> None:
    first_at: dict[str, int] = {}
    for position, branch in enumerate(branches):
        if branch["id"] in first_at:
            raise ServiceError(
                f"branches[{first_at[branch['id']]}] already has the id {branch['id']!r}; "
                "each branch's id is unique",
                f"branches[{position}].id",
            )
        first_at[branch["id"]] = position
    roots = [position for position, branch in enumerate(branches) if branch["parent"] is None]
    if not roots:
        raise ServiceError(
            'No branch is the main branch: exactly one branch has "parent": null', "branches"
        )
    if len(roots) > 1:
        raise ServiceError(
            f"Only one branch has no parent (the main branch, branches[{roots[0]}]); "
            "this one must name its parent",
            f"branches[{roots[1]}].parent",
        )


def _check_parent(branch: dict, lengths: dict[str, int], ids: set[str], where: str) -> None:
    """`lengths` holds the branches before this one: a parent must be among them."""
    parent, fork_index = branch["parent"], branch["fork_index"]
    if parent is None:
        if fork_index != 0:
            raise ServiceError(
                f"The main branch starts at index 0, not {fork_index}", f"{where}.fork_index"
            )
        return
    if parent not in ids:
        raise ServiceError(
            f"The parent {parent!r} is not the id of a branch in this file", f"{where}.parent"
        )
    if parent not in lengths:
        raise ServiceError(
            f"The parent {parent!r} comes after this branch; list parents before their children",
            f"{where}.parent",
        )
    if fork_index > lengths[parent]:
        raise ServiceError(
            f"This branch starts after token {fork_index} but its parent {parent!r} has "
            f"{lengths[parent]} tokens",
            f"{where}.fork_index",
        )


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
            lesson=lesson,
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
