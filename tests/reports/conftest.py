from tests.browser import live_server  # noqa: F401 (the dashboard's browser test)
