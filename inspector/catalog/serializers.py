"""What the models API reads and writes: a reference to add, an entry being added."""

from rest_framework import serializers

from inspector.analysis.job_api import job_dict
from inspector.api.fields import StrictCharField
from inspector.catalog.services import NOT_A_REFERENCE, REFERENCE_MAX
from inspector.models import CatalogModel
from inspector.models.catalog import CARD_FIELDS


class AddModelSerializer(serializers.Serializer):
    reference = StrictCharField(
        max_length=REFERENCE_MAX,
        error_messages={
            "blank": NOT_A_REFERENCE,
            "max_length": f"A reference is at most {REFERENCE_MAX} characters",
        },
        help_text="A Hugging Face id (owner/name) or the absolute path of a model folder on "
        "the worker's machine (config.json, tokenizer and weights, as save_pretrained writes)",
    )


class AddedModelSerializer(serializers.ModelSerializer):
    """An entry added from the page; its card fields stay null until it is ready."""

    added_by = serializers.CharField(
        source="added_by.get_username", read_only=True, default=None, allow_null=True
    )
    job = serializers.SerializerMethodField(help_text="The job adding it (GET /api/v1/jobs/{id}/)")

    class Meta:
        model = CatalogModel
        fields = [
            "key",
            "reference",
            "label",
            "source",
            "status",
            *CARD_FIELDS,
            "added_by",
            "created_at",
            "ready_at",
            "job",
        ]
        read_only_fields = fields

    def get_job(self, entry: CatalogModel) -> dict | None:
        return job_dict(entry.job) if entry.job else None


class CatalogEntrySerializer(serializers.Serializer):
    """One model of the catalog; the card fields are null until a worker has read them."""

    key = serializers.CharField()
    label = serializers.CharField()
    source = serializers.ChoiceField(choices=["packaged", "hub", "local"])
    location = serializers.CharField()
    description = serializers.CharField()
    prepared = serializers.BooleanField()
    loaded = serializers.BooleanField()
    workers = serializers.ListField(child=serializers.CharField(), allow_null=True)
    added_by = serializers.CharField(
        allow_null=True, help_text="Who added it from this page (shown to admins only)"
    )
    added_at = serializers.DateTimeField(allow_null=True)
    architecture = serializers.CharField(required=False)
    n_layers = serializers.IntegerField(required=False)
    n_heads = serializers.IntegerField(required=False)
    n_kv_heads = serializers.IntegerField(required=False)
    hidden_size = serializers.IntegerField(required=False)
    vocab_size = serializers.IntegerField(required=False)
    context_length = serializers.IntegerField(required=False)
    n_params = serializers.IntegerField(required=False)
    has_chat_template = serializers.BooleanField(required=False)
    device = serializers.CharField(required=False, help_text="Where a worker holds it")


class CatalogSerializer(serializers.Serializer):
    models = CatalogEntrySerializer(many=True)
