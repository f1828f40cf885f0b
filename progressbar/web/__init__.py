"""What runs in a web process: the Socket.IO namespace (`namespace`), the HTTP
API (`api`, `openapi`), the extension's other routes (`views`), who is asking
(`identity`) and from which address (`address`), the watchdog that ends tasks
whose worker died (`watchdog`) and the process's end of the message queue
(`message_queue`).

Nothing here imports the worker side; both use the shared core.
"""
