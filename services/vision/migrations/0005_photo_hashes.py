from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

# Written by hand.
class Migration(migrations.Migration):
    dependencies = [('vision', '0004_recognitions')]

    initial = False

    operations = [
        ops.AddField(
            model_name='FaceEmbedding',
            name='photo_sha256',
            field=fields.CharField(null=True, max_length=64, db_index=True),
        ),
    ]
