"""Suite-wide ordering.

Playwright's sync API keeps an asyncio event loop running in the main thread
for as long as its session-scoped browser lives, and pytest-asyncio cannot
start its own loop inside a running one. So the browser tests run last, after
every asyncio test (tests/signaling, ...), in one pytest run.
"""


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
