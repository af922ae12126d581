from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Layout',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('model_code', fields.CharField(max_length=64)),
                ('username', fields.CharField(default='', max_length=64)),
                ('positions', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'messaging_layout', 'app': 'messaging', 'unique_together': (('model_code', 'username'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Message',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('message_id', fields.CharField(unique=True, max_length=64)),
                ('sender', fields.CharField(max_length=64)),
                ('receiver', fields.CharField(db_index=True, max_length=64)),
                ('content', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('read_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'messaging_message', 'app': 'messaging', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Mirror',
            fields=[
                ('mirror_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=128)),
                ('status', fields.CharField(null=True, max_length=16)),
                ('model_code', fields.CharField(null=True, max_length=64)),
                ('widgets', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'messaging_mirror', 'app': 'messaging', 'pk_attr': 'mirror_id'},
            bases=['Model'],
        ),
    ]
