"""`celery -A docsapp.worker worker`"""

from docsapp import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
