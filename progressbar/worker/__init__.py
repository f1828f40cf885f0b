"""What runs in a Celery worker: the task class that runs tracked tasks with a
reporter (`task`), the reporter itself (`reporter`, `rate`, `flusher`), and the
worker's signals: heartbeats and news of dead pool processes (`signals`).

Nothing here imports the web side; both use the shared core (`store`,
`snapshot`, `messages`, `settings`).
"""
