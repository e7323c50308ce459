from celery import shared_task

from .models import Document


@shared_task(bind=True)
def count_documents(self) -> dict:
    """A small task that touches the database, and says which worker ran it."""
    return {"documents": Document.objects.count(), "worker": self.request.hostname}
