from django.apps import AppConfig


class ArchiveConfig(AppConfig):
    name = "archive"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import pydicom.config
        from django.db.backends.signals import connection_created

        from archive.malloc_tuning import malloc_tune
        from archive.read_only import install_guard

        malloc_tune()

        connection_created.connect(install_guard, dispatch_uid="archive.read_only")

        # Values are read as received and answered as Orthanc does; pydicom's check of each value read
        # against its VR only logs warnings (WARN, the default), and costs ~10% of parsing a header.
        pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
