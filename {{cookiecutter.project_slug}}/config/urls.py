from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("{{ cookiecutter.project_slug }}.urls")),
]

if settings.DEBUG:
    # In development runserver serves uploads; in production nginx does.
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
