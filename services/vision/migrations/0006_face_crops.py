from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

# Written by hand.
class Migration(migrations.Migration):
    dependencies = [('vision', '0005_photo_hashes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='FaceEmbedding',
            name='crop',
            field=fields.BinaryField(null=True),
        ),
    ]
