"""Drop the resource indexes of Metadata and Attachment: their unique constraints (resource, type) and
(resource, content_type) lead with the resource and serve the same lookups. Only the two indexes go (DROP
INDEX), not a rebuild of the tables that AlterField makes on SQLite (minutes on a large archive)."""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = ("archive_metadata_resource_id_3addbb5f", "archive_attachment_resource_id_3c89f7d7")


class Migration(migrations.Migration):

    dependencies = [
        ("archive", "0008_staged_file"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="attachment",
                    name="resource",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="attachments", to="archive.resource"),
                ),
                migrations.AlterField(
                    model_name="metadata",
                    name="resource",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="metadata", to="archive.resource"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(sql=[f"DROP INDEX IF EXISTS {name}" for name in INDEXES],
                                  reverse_sql=[
                                      f"CREATE INDEX {INDEXES[0]} ON archive_metadata (resource_id)",
                                      f"CREATE INDEX {INDEXES[1]} ON archive_attachment (resource_id)",
                                  ]),
            ],
        ),
    ]
