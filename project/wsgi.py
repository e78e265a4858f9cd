"""What a web server loads (`gunicorn project.wsgi`, `runserver`): Steward's Django app with
its collected static files, served by WhiteNoise; never with the published development key."""

import os
import sys

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from whitenoise import WhiteNoise

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

application = get_wsgi_application()

if not settings.DEBUG:
    if settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY:
        print(
            "Steward will not serve with DEBUG off and no SECRET_KEY: set SECRET_KEY to a long "
            "random secret (or DEBUG=1 on a development machine).",
            file=sys.stderr,
        )
        # 4 is gunicorn's "app failed to load": its master stops instead of booting workers.
        sys.exit(4)
    # With DEBUG on, the development server serves the apps' static files itself.
    application = WhiteNoise(application, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)
