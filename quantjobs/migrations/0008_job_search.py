from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("quantjobs", "0007_modelupload_checked_on_a_worker"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="search",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="An accuracy-aware search: its bar, candidates, trail and "
                "answer (quantjobs.search); empty for a plain job.",
            ),
        ),
    ]
