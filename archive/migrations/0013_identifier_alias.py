"""The normalised DICOM identifiers Orthanc's C-MOVE and C-GET SCP match, for the
values whose normalised form is not their fold (models.IdentifierAlias), computed for the resources already
stored. Identifier rows are read once, in chunks; UIDs (nearly all of them) get no row."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Q


def _aliases_fill(apps, schema_editor):
    from archive.dicom.matching import IDENTIFIER_TAGS, identifier_alias

    main_tag = apps.get_model("archive", "MainDicomTag")
    alias = apps.get_model("archive", "IdentifierAlias")
    wanted = Q()
    for level, tag in IDENTIFIER_TAGS:
        wanted |= Q(level=level, tag=tag)
    batch = []
    for rid, level, tag, value in main_tag.objects.filter(wanted).values_list(
            "resource_id", "level", "tag", "value").iterator(chunk_size=5000):
        normalized = identifier_alias(level, tag, value)
        if normalized is not None:
            batch.append(alias(resource_id=rid, level=level, tag=tag, value=normalized))
            if len(batch) >= 1000:
                alias.objects.bulk_create(batch)
                batch = []
    alias.objects.bulk_create(batch)


class Migration(migrations.Migration):

    dependencies = [
        ('archive', '0012_collate_c_metadata_labels'),
    ]

    operations = [
        migrations.CreateModel(
            name='IdentifierAlias',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('level', models.PositiveSmallIntegerField(choices=[(0, 'Patient'), (1, 'Study'), (2, 'Series'), (3, 'Instance')])),
                ('tag', models.IntegerField()),
                ('value', models.TextField()),
                ('resource', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='identifier_aliases', to='archive.resource')),
            ],
            options={
                'indexes': [models.Index(fields=['level', 'tag', 'value', 'resource'], name='identifieralias_value'), models.Index(fields=['resource'], name='identifieralias_resource')],
            },
        ),
        migrations.RunPython(_aliases_fill, migrations.RunPython.noop, elidable=False),
    ]
