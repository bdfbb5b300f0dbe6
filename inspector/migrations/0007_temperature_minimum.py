"""Temperatures between 0 and 0.01 are no longer accepted (they overflow float32 and picked
wrong tokens): raise saved ones to the minimum so their explorations still step."""

from django.db import migrations

MIN_TEMPERATURE = 0.01  # engine.sampling.MIN_TEMPERATURE when this was written


def raise_tiny_temperatures(apps, schema_editor):
    Exploration = apps.get_model("inspector", "Exploration")
    for exploration in Exploration.objects.filter(params__has_key="temperature").iterator():
        temperature = exploration.params.get("temperature")
        if isinstance(temperature, int | float) and 0 < temperature < MIN_TEMPERATURE:
            exploration.params["temperature"] = MIN_TEMPERATURE
            exploration.save(update_fields=["params"])


class Migration(migrations.Migration):
    dependencies = [("inspector", "0006_exploration_imported")]
    operations = [migrations.RunPython(raise_tiny_temperatures, migrations.RunPython.noop)]
