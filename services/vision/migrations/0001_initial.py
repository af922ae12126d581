from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Subject',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'vision_subject', 'app': 'vision', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='FaceEmbedding',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('subject', fields.ForeignKeyField('vision.Subject', source_field='subject_id', db_constraint=True, to_field='id', related_name='embeddings', on_delete=OnDelete.CASCADE)),
                ('engine', fields.CharField(max_length=32)),
                ('model_version', fields.CharField(max_length=200)),
                ('vector', fields.BinaryField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'vision_face_embedding', 'app': 'vision', 'indexes': [Index(fields=['engine', 'model_version'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
