from tests.browser import chromium  # noqa: F401 (the console's browser tests)
