from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    # Numbered 0003 to follow the files migration (0002) once both are merged; depend on it then.
    dependencies = [('messaging', '0002_files')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DeletionCursor',
            fields=[
                ('id', fields.IntField(generated=False, primary_key=True, unique=True, db_index=True)),
                ('last_seq', fields.IntField(default=0)),
            ],
            options={'table': 'messaging_deletion_cursor', 'app': 'messaging', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        # The cursor's one row: nothing applied yet.
        ops.RunSQL(
            "INSERT INTO messaging_deletion_cursor (id, last_seq) VALUES (1, 0)",
            "DELETE FROM messaging_deletion_cursor",
        ),
    ]
