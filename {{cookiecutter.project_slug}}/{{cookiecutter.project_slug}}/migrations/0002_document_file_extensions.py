import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("{{ cookiecutter.project_slug }}", "0001_initial")]

    operations = [
        migrations.AlterField(
            model_name="document",
            name="file",
            field=models.FileField(
                upload_to="documents/%Y/%m/",
                validators=[
                    django.core.validators.FileExtensionValidator(
                        ["pdf", "txt", "csv", "png", "jpg", "jpeg", "gif", "webp", "docx", "xlsx", "odt", "ods"]
                    )
                ],
            ),
        ),
    ]
