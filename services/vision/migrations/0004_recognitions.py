from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('vision', '0003_subjects_admin')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Recognition',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('mirror_id', fields.CharField(max_length=64)),
                ('name', fields.CharField(db_index=True, max_length=64)),
                ('distance', fields.FloatField(null=True)),
                ('live', fields.BooleanField(null=True)),
                ('live_reason', fields.CharField(null=True, max_length=200)),
                ('trusted', fields.BooleanField(default=False)),
            ],
            options={'table': 'vision_recognition', 'app': 'vision', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
