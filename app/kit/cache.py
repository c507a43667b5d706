"""This process's caches of what rarely changes and is read on every request (a community's setup, its
points rules, system account ids, verified tokens, revoked tokens): one way to read them, drop them and
keep them filled.

Reading a cached value is a dict lookup and a clock read, no lock: the bin-side scan reads several per
request. Writers take a lock only to store or drop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.core.db import async_connection, engine_key, get_engine
from app.kit.errors import DomainError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
log = logging.getLogger(__name__)

_registry: dict[str, Callable[[], None]] = {}


def register(name: str, clear: Callable[[], None]) -> None:
    """Let `invalidate_all` clear a cache that is not a `Cache` (an lru_cache: pass its cache_clear)."""
    if name in _registry:
        raise ValueError(f"a cache named {name!r} is already registered")
    _registry[name] = clear


def invalidate_all() -> None:
    """Drop every cached value of this process (tests, or an operator after changing rows by hand):
    the next reads go to the database."""
    for clear in _registry.values():
        clear()


def registered() -> list[str]:
    """The names of this process's caches."""
    return list(_registry)


class Cache(Generic[K, V]):
    """Values read from a database, kept here for `seconds` (None: until invalidated), under (the
    engine's URL, key): tests and tools run several databases in one process.

    A read that began before an invalidation of its key does not store what it read (it may predate
    the change that invalidated it). With `until_commit`, a value is stored only once the caller's
    transaction commits (a value the read created, such as a new row's id, may yet be rolled back);
    until then the same session sees it.
    """

    def __init__(
        self, name: str, read: Callable[[Session, K], V], *, seconds: float | None, until_commit: bool = False
    ):
        self.name = name
        self.seconds = seconds
        self._read = read
        self._until_commit = until_commit
        self._entries: dict[tuple[str, K], tuple[float, V]] = {}
        self._urls: set[str] = set()
        # Invalidations by key, and of the whole cache: what a read compares before storing.
        self._generations: dict[K, int] = {}
        self._epoch = 0
        self._lock = threading.Lock()
        register(name, self.clear)

    def peek(self, url: str, key: K) -> V | None:
        """The cached value under (engine URL, key) while fresh, else None; never the database."""
        hit = self._entries.get((url, key))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def expires_at(self, url: str, key: K) -> float:
        """When (time.monotonic) the cached value stops being used; 0.0 when none is cached."""
        hit = self._entries.get((url, key))
        return 0.0 if hit is None else hit[0]

    def get(self, session: Session, key: K, refresh: bool = False) -> V:
        """The value, from the cache while fresh, else read in the caller's session and cached
        (refresh: read it again anyway)."""
        url = engine_key(session.get_bind().engine)
        if not refresh:
            hit = self.peek(url, key)
            if hit is not None:
                return hit
            if self._until_commit:
                staged = session.info.get(_STAGED, {}).get((self, url, key))
                if staged is not None:
                    return staged[1]
        generation = self._generation(key)
        value = self._read(session, key)
        if self._until_commit:
            session.info.setdefault(_STAGED, {})[(self, url, key)] = (generation, value)
        else:
            self._store(url, key, generation, value)
        return value

    def invalidate(self, key: K) -> None:
        """Drop the value under key (in every database's entries) after a change to what it was read from."""
        with self._lock:
            self._generations[key] = self._generations.get(key, 0) + 1
            for url in self._urls:
                self._entries.pop((url, key), None)

    def clear(self) -> None:
        """Drop every value."""
        with self._lock:
            self._epoch += 1
            self._entries.clear()

    def _generation(self, key: K) -> tuple[int, int]:
        return self._epoch, self._generations.get(key, 0)

    def _store(self, url: str, key: K, generation: tuple[int, int], value: V) -> None:
        expires = math.inf if self.seconds is None else time.monotonic() + self.seconds
        with self._lock:
            if self._generation(key) == generation:  # else invalidated while this read: not cached
                self._urls.add(url)
                self._entries[(url, key)] = (expires, value)


_STAGED = "kit.cache.staged"  # session.info: values of until_commit caches read in this transaction


@event.listens_for(Session, "after_commit")
def _store_staged(session: Session) -> None:
    staged: dict[tuple[Cache, str, Any], tuple[tuple[int, int], Any]] | None = session.info.pop(_STAGED, None)
    for (cache, url, key), (generation, value) in (staged or {}).items():
        cache._store(url, key, generation, value)


@event.listens_for(Session, "after_rollback")
def _drop_staged(session: Session) -> None:
    session.info.pop(_STAGED, None)


class Filler(Generic[K]):
    """Keeps caches filled for code on the event loop, by `fill(key, refresh)` run in a worker thread.

    - `wait(key)`: the callers finding the caches cold at once wait for one fill.
    - `refresh_if_expiring(key, expires_at)`: caches that expire within `refresh_ahead` seconds are
      read again in the background (refresh=True) while the callers go on with them, so under load they
      never expire (every caller arriving at an expiry would wait for its own reload).
    - A failed fill is logged, never raised; after one, no refresh is started for `retry_seconds` (else
      every call of the caches' last second would start one against a database that just failed). A
      cold cache is filled at once regardless.
    """

    def __init__(self, name: str, fill: Callable[[K, bool], object], *, refresh_ahead: float, retry_seconds: float):
        self.name = name
        self.fill = fill
        self.refresh_ahead = refresh_ahead
        self.retry_seconds = retry_seconds
        self._running: dict[K, asyncio.Future] = {}  # one fill per key and event loop
        self._paused_until: dict[K, float] = {}
        register(name, self._paused_until.clear)

    async def wait(self, key: K) -> None:
        """Fill the caches of key, or wait for the fill under way; a failure is logged, not raised."""
        try:
            await asyncio.shield(self._start(key, False))
        except Exception:  # logged by _done
            pass

    def refresh_if_expiring(self, key: K, expires_at: float) -> None:
        """Start a refresh in the background if the caches expire (time.monotonic) within refresh_ahead."""
        now = time.monotonic()
        if expires_at < now + self.refresh_ahead and now >= self._paused_until.get(key, 0.0):
            self._start(key, True)

    def busy(self, key: K) -> bool:
        """Whether a fill of key is under way."""
        return key in self._running

    def _start(self, key: K, refresh: bool) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        running = self._running.get(key)
        if running is None or running.get_loop() is not loop:
            running = self._running[key] = asyncio.ensure_future(run_in_threadpool(self.fill, key, refresh))
            running.add_done_callback(lambda done: self._done(key, done))
        return running

    def _done(self, key: K, done: asyncio.Future) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        failure = None if done.cancelled() else done.exception()
        if failure is not None:
            self._paused_until[key] = time.monotonic() + self.retry_seconds
            log.warning("cache fill failed: %s %s", self.name, key, exc_info=failure)


class Snapshot(Generic[V]):
    """A small query's whole answer, per database, for code on the event loop (revoked tokens, read on
    every request). Read through the asyncio pool (app.core.db.async_connection): no worker thread, so
    a thread pool full of slow requests does not hold it up.

    - A value younger than `refresh_after` seconds is used as it is; one younger than `max_age` too,
      while a read runs in the background (under load it never goes stale); an older one is not used:
      the callers wait for a read (one per event loop, shared), and hear its error if it fails (a 503
      while the database is unavailable). A value is as old as the start of the read that made it.
    - `invalidate()` drops the values; a read that began before it does not store what it read.
      `invalidate_after_commit(session)` does so once the session's transaction commits (the change
      it made is then visible to the next read).
    """

    def __init__(self, name: str, read: Callable[[Any], Awaitable[V]], *, max_age: float, refresh_after: float):
        if not 0 < refresh_after <= max_age:
            raise ValueError("refresh_after must be positive and at most max_age")
        self.name = name
        self.max_age = max_age
        self.refresh_after = refresh_after
        self._read = read
        self._values: dict[str, tuple[float, V]] = {}  # engine URL → (its read's start, value)
        self._reads: dict[tuple[int, str], asyncio.Future] = {}  # (event loop, engine URL) → the read under way
        self._epoch = 0
        self.reads = 0  # reads started, for tests and the curious
        register(name, self.invalidate)

    async def get(self) -> V:
        """The value for the app's database (see the class's docstring for how fresh)."""
        url = engine_key(get_engine())
        hit = self._values.get(url)
        if hit is not None:
            age = time.monotonic() - hit[0]
            if age < self.max_age:
                if age >= self.refresh_after:
                    self._start(url)
                return hit[1]
        return await asyncio.shield(self._start(url))

    def invalidate(self) -> None:
        """Drop the values (of every database): the next caller waits for a read."""
        self._epoch += 1
        self._values.clear()

    def invalidate_after_commit(self, session: Session) -> None:
        """`invalidate()` once the session's transaction commits (nothing if it rolls back)."""
        session.info.setdefault(_SNAPSHOTS, set()).add(self)

    def _start(self, url: str) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        key = (id(loop), url)
        running = self._reads.get(key)
        if running is None or running.get_loop() is not loop:
            running = self._reads[key] = asyncio.ensure_future(self._read_and_store(url))
            running.add_done_callback(lambda done: self._done(key, done))
        return running

    async def _read_and_store(self, url: str) -> V:
        epoch, started = self._epoch, time.monotonic()
        self.reads += 1
        async with async_connection() as conn:
            value = await self._read(conn)
        if epoch == self._epoch:  # else invalidated while this read ran: it may predate the change
            self._values[url] = (started, value)
        return value

    def _done(self, key: tuple[int, str], done: asyncio.Future) -> None:
        if self._reads.get(key) is done:
            del self._reads[key]
        failure = None if done.cancelled() else done.exception()  # retrieved, so asyncio does not report it
        if failure is not None and not isinstance(failure, DomainError):  # a 503 (database unavailable) is the request log's
            log.warning("cache read failed: %s", self.name, exc_info=failure)


_SNAPSHOTS = "kit.cache.snapshots"  # session.info: snapshots to invalidate when the transaction commits


@event.listens_for(Session, "after_commit")
def _invalidate_snapshots(session: Session) -> None:
    for snapshot in session.info.pop(_SNAPSHOTS, ()):
        snapshot.invalidate()


@event.listens_for(Session, "after_rollback")
def _no_invalidation_after_rollback(session: Session) -> None:
    session.info.pop(_SNAPSHOTS, None)
