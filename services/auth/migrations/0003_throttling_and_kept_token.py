from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('auth', '0002_one_user_store_and_revocation')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FailedAttempt',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('action', fields.CharField(max_length=8)),
                ('username', fields.CharField(max_length=64)),
                ('address', fields.CharField(null=True, max_length=64)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('pending', fields.BooleanField(default=True)),
            ],
            options={'table': 'auth_failed_attempt', 'app': 'auth', 'indexes': [Index(fields=['action', 'username', 'at']), Index(fields=['action', 'address', 'at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='User',
            name='kept_jti',
            field=fields.CharField(null=True, max_length=64),
        ),
    ]
