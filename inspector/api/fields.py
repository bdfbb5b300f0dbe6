"""Serializer fields and validators for JSON from clients: strings only where text belongs, no
booleans read as numbers, nothing stored that PostgreSQL cannot keep."""

from django.core.validators import ProhibitNullCharactersValidator
from django.db import models
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

TEXT_CHECKS = (ProhibitNullCharactersValidator(), ProhibitSurrogateCharactersValidator())
JSON_KINDS = {bool: "true or false", int: "a number", float: "a number", list: "a list"}


class StrictCharField(serializers.CharField):
    """A CharField that takes only strings. DRF's own turns 123 into "123", so a client that
    sends a number where text belongs never learns of its mistake; this one answers 400 naming
    the field. Every string that comes from JSON goes through it."""

    default_error_messages = {"not_a_string": "Give a text (a JSON string), not {kind}"}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string", kind=JSON_KINDS.get(type(data), "an object"))
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A FloatField that refuses true and false (DRF's reads them as 1.0 and 0.0)."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer whose text columns are StrictCharFields."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }


def storable_json(value) -> None:
    """Validator for JSON that is saved: each string and key in it passes the checks of DRF's
    CharField (no NUL, no lone surrogate), which PostgreSQL's jsonb needs too. Walks with a
    stack, so data nested as deep as the parser allows cannot exhaust the recursion limit."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            for check in TEXT_CHECKS:
                check(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
