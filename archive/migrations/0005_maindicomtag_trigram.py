"""PostgreSQL only: a trigram index on the folded tag values, so that /tools/find's ``*SMITH*`` wildcards
(``value_folded LIKE '%SMITH%'``) read the matching rows instead of every value of the tag. SQLite has no
such index type; there the (level, tag, value_folded) index is scanned. pg_trgm ships with Debian's
postgresql-15 package; creating the extension needs a superuser (or a database owner on PG 13+, as pg_trgm
is a trusted extension)."""

from django.db import migrations


def _create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute("CREATE INDEX IF NOT EXISTS maindicomtag_folded_trgm ON archive_maindicomtag"
                          " USING gin (value_folded gin_trgm_ops)")


def _drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS maindicomtag_folded_trgm")


class Migration(migrations.Migration):

    dependencies = [
        ('archive', '0004_statistics_counter'),
    ]

    operations = [
        migrations.RunPython(_create, _drop),
    ]
