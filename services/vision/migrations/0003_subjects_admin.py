from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('vision', '0002_owners_and_deletions')]

    initial = False

    operations = [
        ops.CreateModel(
            name='NegativeEmbedding',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('subject', fields.ForeignKeyField('vision.Subject', source_field='subject_id', db_constraint=True, to_field='id', related_name='negatives', on_delete=OnDelete.CASCADE)),
                ('engine', fields.CharField(max_length=32)),
                ('model_version', fields.CharField(max_length=200)),
                ('vector', fields.BinaryField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('reported_by', fields.CharField(max_length=80)),
            ],
            options={'table': 'vision_negative_embedding', 'app': 'vision', 'indexes': [Index(fields=['engine', 'model_version'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Subject',
            name='display_name',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Subject',
            name='threshold',
            field=fields.FloatField(null=True),
        ),
    ]
