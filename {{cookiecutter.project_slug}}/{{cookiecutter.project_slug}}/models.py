from django.db import models


class Document(models.Model):
    """An uploaded file: stored under MEDIA_ROOT, served by nginx from /media/ in production."""

    title = models.CharField(max_length=200)
    file = models.FileField(upload_to="documents/%Y/%m/")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded_at"]

    def __str__(self) -> str:
        return self.title
