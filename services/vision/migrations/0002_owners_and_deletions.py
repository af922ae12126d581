from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('vision', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DeletionCursor',
            fields=[
                ('id', fields.IntField(generated=False, primary_key=True, unique=True, db_index=True)),
                ('last_seq', fields.IntField(default=0)),
            ],
            options={'table': 'vision_deletion_cursor', 'app': 'vision', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        # The cursor's one row: nothing applied yet.
        ops.RunSQL(
            "INSERT INTO vision_deletion_cursor (id, last_seq) VALUES (1, 0)",
            "DELETE FROM vision_deletion_cursor",
        ),
        # Photos enrolled before accounts were bound stay unbound: they greet by name only.
        ops.AddField(
            model_name='FaceEmbedding',
            name='owner_id',
            field=fields.IntField(null=True),
        ),
    ]
