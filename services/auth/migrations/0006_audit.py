from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('auth', '0005_admins')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=True, db_index=True)),
                ('actor', fields.CharField(null=True, max_length=64)),
                ('source', fields.CharField(max_length=16)),
                ('action', fields.CharField(max_length=32)),
                ('target', fields.CharField(max_length=128)),
                ('detail', fields.JSONField()),
            ],
            options={'table': 'auth_audit', 'app': 'auth', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
