"""Worker entry point: `celery -A celery_worker worker`. Never imports eventlet."""

from demo import create_app

# Not `app`: `celery -A` would take a variable of that name for the Celery app.
flask_app = create_app()
celery_app = flask_app.extensions["celery"]
