"""TEST STAND-IN (not web2py): a tiny cache.ram (cache.disk is the same object)."""

import threading
import time

__all__ = ['Cache']


class CacheInRam:
    storage = {}
    locker = threading.RLock()

    def __call__(self, key, f, time_expire=300):
        with self.locker:
            if f is None:
                self.storage.pop(key, None)
                return None
            item = self.storage.get(key)
            now = time.time()
            if item and (time_expire is None or item[0] > now - time_expire):
                return item[1]
        value = f()
        with self.locker:
            self.storage[key] = (now, value)
        return value

    def clear(self, regex=None):
        with self.locker:
            self.storage.clear()


class Cache:
    def __init__(self, request=None):
        self.ram = self.disk = CacheInRam()

    def __call__(self, key=None, time_expire=300, cache_model=None):
        def decorator(func):
            def wrapper(*a, **b):
                return self.ram(key or func.__name__, lambda: func(*a, **b), time_expire)
            return wrapper
        return decorator

    action = __call__
