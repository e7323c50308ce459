{% if cookiecutter.api != "none" -%}
from django.conf import settings
{% endif -%}
from django.core.validators import FileExtensionValidator
from django.db import models

# What may be uploaded. Not HTML, SVG or anything else a browser could run as this site (nginx also
# serves /media/ sandboxed, and as downloads unless images). Extend it with care.
ALLOWED_EXTENSIONS = ["pdf", "txt", "csv", "png", "jpg", "jpeg", "gif", "webp", "docx", "xlsx", "odt", "ods"]


class Document(models.Model):
    """An uploaded file: stored under MEDIA_ROOT, served by nginx from /media/ in production."""

    title = models.CharField(max_length=200)
    file = models.FileField(upload_to="documents/%Y/%m/", validators=[FileExtensionValidator(ALLOWED_EXTENSIONS)])
    uploaded_at = models.DateTimeField(auto_now_add=True)
{%- if cookiecutter.api != "none" %}
    # API: who uploaded it through the API (they may change or delete it, as staff may); empty from the admin.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="documents"
    )
{%- endif %}

    class Meta:
        ordering = ["-uploaded_at"]

    def __str__(self) -> str:
        return self.title
