from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0005_run_rescue'),
    ]

    operations = [
        migrations.AlterField(
            model_name='jobrun',
            name='idempotency_key',
            field=models.CharField(blank=True, help_text="The client's Idempotency-Key: the same key from the same user always answers with this run.", max_length=255, null=True),
        ),
        migrations.AddConstraint(
            model_name='jobrun',
            constraint=models.UniqueConstraint(condition=models.Q(('idempotency_key__isnull', False)), fields=('requested_by', 'idempotency_key'), name='jobrun_one_run_per_idempotency_key'),
        ),
    ]
