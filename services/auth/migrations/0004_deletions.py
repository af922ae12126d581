from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('auth', '0003_throttling_and_kept_token')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Deletion',
            fields=[
                ('seq', fields.IntField(generated=False, primary_key=True, unique=True, db_index=True)),
                ('user_id', fields.IntField()),
                ('username', fields.CharField(max_length=64)),
                ('deleted_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'auth_deletion', 'app': 'auth', 'pk_attr': 'seq'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DeletionCounter',
            fields=[
                ('id', fields.IntField(generated=False, primary_key=True, unique=True, db_index=True)),
                ('last_seq', fields.IntField(default=0)),
            ],
            options={'table': 'auth_deletion_counter', 'app': 'auth', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        # The counter's one row, which every deletion locks and bumps.
        ops.RunSQL(
            "INSERT INTO auth_deletion_counter (id, last_seq) VALUES (1, 0)",
            "DELETE FROM auth_deletion_counter",
        ),
    ]
