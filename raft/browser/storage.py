"""localStorage as the tiny key/value interface raft.records.RecordLog uses.

Thin on purpose: the record format, checks and recovery live in raft/records.py
(tested in CPython). This only adapts the FFI and turns the browser's
QuotaExceededError into records.StorageFull.
"""

from raft.records import StorageFull


# MicroPython 1.28 (webassembly) does not turn a JS exception into a Python
# one: it unwinds straight through the interpreter, so `try: setItem(...)`
# cannot catch QuotaExceededError. A JS wrapper catches it and returns "" on
# success or "<name>: <message>" on failure, for both runtimes alike.
_SET_ITEM_JS = ("try { s.setItem(k, v); return ''; } catch (e) {"
                " return String((e && e.name) || 'Error') + ': ' + String((e && e.message) || e); }")


def is_quota_error(text):
    # Chromium/Firefox name it QuotaExceededError; NS_ERROR_DOM_QUOTA_REACHED
    # is Firefox's legacy name.
    return "QuotaExceeded" in text or "QUOTA_REACHED" in text


class LocalStorageKV:
    def __init__(self, storage=None):
        from js import Function
        if storage is None:
            from js import localStorage as storage
        self.storage = storage
        self._set_item = Function.new("s", "k", "v", _SET_ITEM_JS)

    def get(self, key):
        value = self.storage.getItem(key)
        # JS null arrives as None (MicroPython) or jsnull (Pyodide): only a
        # str is a stored value.
        return value if isinstance(value, str) else None

    def set(self, key, value):
        failure = str(self._set_item(self.storage, key, value))
        if not failure:
            return
        if is_quota_error(failure):
            raise StorageFull("localStorage quota exceeded writing %s (%d chars): %s"
                              % (key, len(value), failure))
        raise OSError("localStorage.setItem failed: " + failure)

    def remove(self, key):
        self.storage.removeItem(key)

    def keys(self):
        n = self.storage.length
        out = []
        for i in range(n):
            k = self.storage.key(i)
            if isinstance(k, str):
                out.append(k)
        return out
