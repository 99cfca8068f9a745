"""WSGI entry point. The URLconf (and with it the views, pydicom and numpy) is imported here, at start-up,
not on a worker's first request: with gunicorn's --preload that happens once in the master, and the
workers fork warm, sharing those pages."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "explorer.settings")
application = get_wsgi_application()

from django.urls import get_resolver  # noqa: E402  (needs the settings configured above)

get_resolver().url_patterns  # noqa: B018  (imports every view module now)
