from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
{%- if cookiecutter.use_celery == "y" %}
    path("tasks/", views.start_task, name="start_task"),
    path("tasks/<str:task_id>/", views.task_status, name="task_status"),
{%- endif %}
]
