from tests.browser import chromium, live_server  # noqa: F401 (the console's browser tests)
