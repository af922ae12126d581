from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('auth', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RevokedToken',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('jti', fields.CharField(unique=True, max_length=64)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'auth_revoked_token', 'app': 'auth', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='User',
            name='email',
            field=fields.CharField(null=True, max_length=254),
        ),
        ops.AddField(
            model_name='User',
            name='first_name',
            field=fields.CharField(null=True, max_length=128),
        ),
        ops.AddField(
            model_name='User',
            name='fullname',
            field=fields.CharField(null=True, max_length=128),
        ),
        ops.AddField(
            model_name='User',
            name='last_name',
            field=fields.CharField(null=True, max_length=128),
        ),
        ops.AddField(
            model_name='User',
            name='profile',
            field=fields.CharField(null=True, max_length=255),
        ),
    ]
