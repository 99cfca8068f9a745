"""Metadata values and label names compare byte by byte on PostgreSQL, as Orthanc (std::string order) and
SQLite do, whatever the database's collation (Debian's default is en_US.UTF-8, a dictionary order): OrderBy
Metadata and the Labels lists then answer the same on every engine. The main DICOM tags got this in 0003."""

from django.db import migrations


def _collate_c(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute('ALTER TABLE archive_metadata ALTER COLUMN value TYPE text COLLATE "C"')
        schema_editor.execute('ALTER TABLE archive_label ALTER COLUMN name TYPE varchar(64) COLLATE "C"')


class Migration(migrations.Migration):
    dependencies = [("archive", "0011_json_nul_safe")]

    operations = [migrations.RunPython(_collate_c, migrations.RunPython.noop, elidable=False)]
