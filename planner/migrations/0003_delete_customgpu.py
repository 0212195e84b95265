# Users could never create a custom GPU (no page, API or command made one), yet every
# plan looked one up: the model goes, with its lookup, admin and selector.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("planner", "0002_plan_comparison"),
    ]

    operations = [
        migrations.DeleteModel(
            name="CustomGpu",
        ),
    ]
