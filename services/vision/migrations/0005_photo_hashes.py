from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

# Written by hand. When merged beside the recognitions store's 0004, this depends on that one
# instead (one line of migrations per app).
class Migration(migrations.Migration):
    dependencies = [('vision', '0003_subjects_admin')]

    initial = False

    operations = [
        ops.AddField(
            model_name='FaceEmbedding',
            name='photo_sha256',
            field=fields.CharField(null=True, max_length=64, db_index=True),
        ),
    ]
