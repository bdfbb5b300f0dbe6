"""The exploration file format and its validation: the envelope, sizes, the branch tree, token
ids within the model's vocabulary; whole or not at all, each error with its path."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from inspector.api.errors import first_error
from inspector.api.fields import (
    StrictCharField,
    StrictFloatField,
    StrictModelSerializer,
    storable_json,
)
from inspector.compute import services
from inspector.errors import ServiceError
from inspector.explorations.conversation import REPLY_ENDINGS
from inspector.explorations.serializers import (
    MAX_FORCED_CHARS,
    STEP_FIELDS,
    ExplorationSerializer,
)
from inspector.models import Step

FORMAT = "tokenlens.exploration"
VERSION = 2  # 2: conversations (steps of mode "turn", a turn's text); 1 is still read
READABLE_VERSIONS = (1, 2)
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
            "invalid_choice": ("A step's mode is sampled, greedy, forced or turn, not {input!r}")
        },
    )
    turn = serializers.DictField(
        required=False, allow_null=True, default=None, validators=[storable_json]
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

    def validate_turn(self, turn: dict | None) -> dict | None:
        if turn is None:
            return None
        if not isinstance(turn.get("text"), str) or len(turn["text"]) > MAX_FORCED_CHARS:
            raise serializers.ValidationError(
                f"A turn holds the text the person typed (at most {MAX_FORCED_CHARS:,} characters)"
            )
        if turn.get("reply_ended") not in REPLY_ENDINGS:
            raise serializers.ValidationError(
                f"A turn's reply_ended is how the reply before it ended: one of "
                f"{', '.join(REPLY_ENDINGS)}"
            )
        return turn

    def validate(self, data: dict) -> dict:
        if data.get("turn") is not None and data["mode"] != Step.Mode.TURN:
            raise serializers.ValidationError({"turn": "Only a step of mode turn opens a turn"})
        return data


class BranchFileSerializer(serializers.Serializer):
    id = StrictCharField(max_length=64, help_text="Links children to parents only")
    parent = StrictCharField(max_length=64, allow_null=True, default=None)
    fork_index = serializers.IntegerField(min_value=0, default=0)
    label = StrictCharField(max_length=100, trim_whitespace=False)
    finish_reason = StrictCharField(max_length=32, allow_blank=True, default="")
    steps = StepFileSerializer(many=True, help_text="The branch's own steps, in order")


class ExplorationFileSerializer(serializers.Serializer):
    """A TokenLens exploration file (format tokenlens.exploration, version 2; version 1, from
    before conversations, is read too)."""

    format = serializers.ChoiceField(choices=[FORMAT])
    version = serializers.IntegerField()
    exported_at = serializers.DateTimeField(read_only=True)
    exploration = ExplorationSettingsSerializer()
    branches = BranchFileSerializer(many=True, help_text="Parents before their children")


def validate_file(data) -> dict:
    """The file's validated content, or ServiceError naming the first problem and where it is."""
    _check_envelope(data)
    serializer = ExplorationFileSerializer(data=data)
    if not serializer.is_valid():
        field, message = first_error(serializer.errors)
        raise ServiceError(message, field)
    validated = serializer.validated_data
    _check_tree(validated["branches"])
    _check_turns(validated["branches"])
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
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise ServiceError(
            f"This file is version {version}; this TokenLens reads versions 1 and {VERSION}",
            "version",
        )
    if version == 1 and _has_turns(data.get("branches")):
        raise ServiceError(
            "This file says version 1 but holds a conversation's turns (steps of mode turn), "
            "which version 1 files cannot have",
            "version",
        )
    _check_sizes(data.get("branches"))


def _has_turns(branches) -> bool:
    return isinstance(branches, list) and any(
        isinstance(step, dict) and (step.get("mode") == Step.Mode.TURN or step.get("turn"))
        for branch in branches
        if isinstance(branch, dict) and isinstance(branch.get("steps"), list)
        for step in branch["steps"]
    )


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


def _check_turns(branches: list[dict]) -> None:
    """A user's turn is a run of steps of mode turn whose first step, and only that one, keeps
    the turn (text, reply_ended); no branch starts inside a turn (as on this server)."""
    modes: dict[str, list[str]] = {}
    for position, branch in enumerate(branches):
        where = f"branches[{position}]"
        inherited = modes[branch["parent"]][: branch["fork_index"]] if branch["parent"] else []
        parent_modes = modes[branch["parent"]] if branch["parent"] else []
        at = branch["fork_index"]
        if at < len(parent_modes) and parent_modes[at] == Step.Mode.TURN:
            raise ServiceError(
                "This branch starts inside a user's turn of its parent; a branch starts at a "
                "token the model chose",
                f"{where}.fork_index",
            )
        sequence = list(inherited)
        for number, step in enumerate(branch["steps"]):
            opens = step["mode"] == Step.Mode.TURN and (
                not sequence or sequence[-1] != Step.Mode.TURN
            )
            if opens != (step.get("turn") is not None):
                raise ServiceError(
                    "A user's turn keeps its text on its first token, and only there"
                    if step["mode"] == Step.Mode.TURN
                    else "Only a step of mode turn opens a turn",
                    f"{where}.steps[{number}].turn",
                )
            sequence.append(step["mode"])
        modes[branch["id"]] = sequence


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
