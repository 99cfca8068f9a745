"""Running totals for /statistics, filled once from the tables (the last whole-table count)."""

from django.db import migrations, models
from django.db.models import Count, Sum


def _backfill(apps, schema_editor):
    Resource = apps.get_model("archive", "Resource")
    Attachment = apps.get_model("archive", "Attachment")
    StatisticsCounter = apps.get_model("archive", "StatisticsCounter")
    db = schema_editor.connection.alias
    counts = dict(Resource.objects.using(db).values_list("level").annotate(n=Count("id"))
                  .values_list("level", "n"))
    sizes = Attachment.objects.using(db).aggregate(disk=Sum("compressed_size"), raw=Sum("uncompressed_size"))
    StatisticsCounter.objects.using(db).create(
        shard=0, patients=counts.get(0, 0), studies=counts.get(1, 0), series=counts.get(2, 0),
        instances=counts.get(3, 0), disk_size=sizes["disk"] or 0, uncompressed_size=sizes["raw"] or 0)


class Migration(migrations.Migration):

    dependencies = [
        ('archive', '0003_main_dicom_tag'),
    ]

    operations = [
        migrations.CreateModel(
            name='StatisticsCounter',
            fields=[
                ('shard', models.SmallIntegerField(primary_key=True, serialize=False)),
                ('patients', models.BigIntegerField(default=0)),
                ('studies', models.BigIntegerField(default=0)),
                ('series', models.BigIntegerField(default=0)),
                ('instances', models.BigIntegerField(default=0)),
                ('disk_size', models.BigIntegerField(default=0)),
                ('uncompressed_size', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(_backfill, migrations.RunPython.noop),
    ]
