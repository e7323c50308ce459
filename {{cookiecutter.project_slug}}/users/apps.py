from django.apps import AppConfig


class UsersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "users"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from .accounts import verify_superuser_address

        post_save.connect(verify_superuser_address, sender=self.get_model("User"), dispatch_uid="verify_superuser")
