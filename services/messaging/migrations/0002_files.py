from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('messaging', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='File',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('owner', fields.CharField(db_index=True, max_length=64)),
                ('file_type', fields.CharField(max_length=32)),
                ('file_name', fields.CharField(max_length=255)),
                ('sha256', fields.CharField(db_index=True, max_length=64)),
                ('size', fields.BigIntField()),
                ('content_type', fields.CharField(max_length=127)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'messaging_file', 'app': 'messaging', 'unique_together': (('owner', 'file_type', 'file_name'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='Message',
            name='sender',
            field=fields.CharField(db_index=True, max_length=64),
        ),
        ops.AddField(
            model_name='Message',
            name='attachment_name',
            field=fields.CharField(null=True, max_length=255),
        ),
        ops.AddField(
            model_name='Message',
            name='attachment_type',
            field=fields.CharField(null=True, max_length=32),
        ),
    ]
