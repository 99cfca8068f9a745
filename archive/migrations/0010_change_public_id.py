"""The change log's index on the public ID (a deleted resource's changes go with it). On PostgreSQL it is
built CONCURRENTLY: a plain CREATE INDEX on a large change log would hold off every ingest meanwhile."""

from django.db import migrations, models

INDEX = models.Index(fields=["public_id"], name="change_public_id")


def create(apps, schema_editor) -> None:
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"CREATE INDEX{concurrently} IF NOT EXISTS change_public_id "
                          "ON archive_change (public_id)")


def drop(apps, schema_editor) -> None:
    schema_editor.execute("DROP INDEX IF EXISTS change_public_id")


class Migration(migrations.Migration):
    atomic = False      # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("archive", "0009_redundant_resource_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="change", index=INDEX)],
            database_operations=[migrations.RunPython(create, drop)],
        ),
    ]
