"""The MainDicomTag table for /tools/find, filled from the existing ``Resource.main_tags``.

The table is loaded before its indexes are built (faster on a large archive). On PostgreSQL the value
columns get the "C" collation, so comparisons and ORDER BY follow byte order, as on SQLite and in Orthanc.
"""

import django.db.models.deletion
from django.db import migrations, models


def _collate_c(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute('ALTER TABLE archive_maindicomtag ALTER COLUMN value TYPE text COLLATE "C", '
                              'ALTER COLUMN value_folded TYPE text COLLATE "C"')


def _backfill(apps, schema_editor):
    from archive.dicom.matching import fold
    from archive.dicom.tags import tag_number

    Resource = apps.get_model("archive", "Resource")
    MainDicomTag = apps.get_model("archive", "MainDicomTag")
    db = schema_editor.connection.alias
    batch: list = []
    last = 0
    while True:
        rows = list(Resource.objects.using(db).filter(id__gt=last).order_by("id")
                    .values_list("id", "level", "main_tags")[:2000])
        if not rows:
            break
        last = rows[-1][0]
        for rid, level, tags in rows:
            for name, value in (tags or {}).items():
                number = tag_number(name)
                if number is not None and isinstance(value, str):
                    batch.append(MainDicomTag(resource_id=rid, level=level, tag=number, value=value,
                                              value_folded=fold(value)))
        MainDicomTag.objects.using(db).bulk_create(batch, batch_size=1000)
        batch = []


class Migration(migrations.Migration):

    dependencies = [
        ('archive', '0002_global_property'),
    ]

    operations = [
        migrations.CreateModel(
            name='MainDicomTag',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('level', models.PositiveSmallIntegerField(choices=[(0, 'Patient'), (1, 'Study'), (2, 'Series'), (3, 'Instance')])),
                ('tag', models.IntegerField()),
                ('value', models.TextField()),
                ('value_folded', models.TextField()),
                ('resource', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='tag_rows', to='archive.resource')),
            ],
        ),
        migrations.RunPython(_collate_c, migrations.RunPython.noop),
        migrations.RunPython(_backfill, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='maindicomtag',
            constraint=models.UniqueConstraint(fields=('resource', 'tag'), name='maindicomtag_unique'),
        ),
        migrations.AddIndex(
            model_name='maindicomtag',
            index=models.Index(fields=['level', 'tag', 'value', 'resource'], name='maindicomtag_value'),
        ),
        migrations.AddIndex(
            model_name='maindicomtag',
            index=models.Index(fields=['level', 'tag', 'value_folded', 'resource'], name='maindicomtag_folded'),
        ),
    ]
