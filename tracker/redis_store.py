"""Several trackers, one room state, in Redis (``treecast-tracker --store redis://...``).

Theory of operation
-------------------
Each tracker keeps its own ``TrackerState`` (in shared mode) for the peers connected
to it; Redis holds what they must agree on, and tells each tracker what the others
did:

* **The lock** of a room is the key ``tc:lock:{room}`` (holder id, name, address,
  epoch, token, tracker), set only by Lua scripts so each decision is atomic: a claim
  sets it if absent (``SET ... PX``: the lease plus grace, renewed by the holder's
  tracker every second while the holder is alive); a resume keeps the holder's epoch
  if no newer one was granted in the room (``tc:room_epoch:{room}``) and the token
  matches the last grant's (``tc:token:{room}``); a release deletes it only for the
  tracker that holds it. One key per room, one script at a time: never two holders.
* **Epochs** come from ``INCR tc:epoch``, floored at the wall clock in ms (the same
  floor as a memory tracker), and every epoch in use is written back to the counter,
  so epochs rise across trackers, restarts of trackers and restarts of Redis.
* **Peers** are ``tc:peer:{room}:{id}`` records with a TTL (refreshed while the peer
  is registered), read once when a tracker starts (or Redis comes back), and each
  change is published on ``tc:events``: the other trackers list those peers in their
  rooms (candidates, tree views), so peers of one room on different trackers form
  one tree. Each tracker keeps ``tc:tracker:{id}`` alive (1 s refresh, 3 s TTL); when
  it lapses (kill -9) the others drop that tracker's peers, which re-register
  elsewhere.
* **Redis down.** Fresh claims are refused ("try again"); a holder keeps its lock at
  its own tracker and the renewal re-asserts it in Redis once Redis is back (unless a
  newer epoch exists there); every tracker re-publishes its peers and re-reads the
  others'. A Redis restart therefore costs no broadcast.

The TrackerState stays sans-IO: it queues LockOps and PeerChanges; this module runs
them and feeds results and other trackers' news back through the server's dispatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from protocol.records import PeerInfo
from tracker.state import LockOp, LockRecord, Outbound, PeerChange, TrackerState

log = logging.getLogger("tracker.redis")

CHANNEL = "tc:events"
# A tracker that has not refreshed its key for this long is dead to the others.
TRACKER_TTL_MS = 3000
# Peer records outlive a missed refresh or two; a dead tracker's go with it earlier.
PEER_TTL_MS = 30_000
_TICK_S = 1.0
# How long one Redis call may take before the store counts as failing.
_CALL_TIMEOUT_S = 2.0

_CLAIM = """
local cur = redis.call('GET', KEYS[1])
local mode = ARGV[1]
if cur then
  local l = cjson.decode(cur)
  if l.id == ARGV[2] and mode == 'resume' and tonumber(l.epoch) == tonumber(ARGV[9])
      and l.token == ARGV[11] then
    l.tracker = ARGV[6]; l.host = ARGV[4]; l.port = ARGV[5]
    local enc = cjson.encode(l)
    redis.call('SET', KEYS[1], enc, 'PX', ARGV[7])
    return {1, enc}
  end
  return {0, cur}
end
local epoch
local token
if mode == 'resume' then
  local want = tonumber(ARGV[9])
  if tonumber(redis.call('GET', KEYS[3]) or '0') > want then return {0, ''} end
  local known = redis.call('GET', KEYS[4])
  if known and known ~= ARGV[11] then return {0, ''} end
  epoch = want
  token = ARGV[11]
else
  epoch = redis.call('INCR', KEYS[2])
  local floor = tonumber(ARGV[8])
  if epoch <= floor then
    epoch = floor + 1
    redis.call('SET', KEYS[2], epoch)
  end
  token = ARGV[10]
end
local enc = cjson.encode({id=ARGV[2], name=ARGV[3], host=ARGV[4], port=ARGV[5],
                          epoch=tostring(epoch), token=token, tracker=ARGV[6]})
redis.call('SET', KEYS[1], enc, 'PX', ARGV[7])
if epoch > tonumber(redis.call('GET', KEYS[3]) or '0') then
  redis.call('SET', KEYS[3], epoch)
end
redis.call('SET', KEYS[4], token)
if epoch > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], epoch)
end
return {1, enc}
"""

_RENEW = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local l = cjson.decode(cur)
  if l.id == ARGV[1] and tonumber(l.epoch) == tonumber(ARGV[2]) and l.tracker == ARGV[4] then
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
    return {1, cur}
  end
  return {0, cur}
end
local epoch = tonumber(ARGV[2])
if tonumber(redis.call('GET', KEYS[3]) or '0') > epoch then return {0, ''} end
local enc = cjson.encode({id=ARGV[1], name=ARGV[6], host=ARGV[7], port=ARGV[8],
                          epoch=ARGV[2], token=ARGV[3], tracker=ARGV[4]})
redis.call('SET', KEYS[1], enc, 'PX', ARGV[5])
redis.call('SET', KEYS[3], epoch)
redis.call('SET', KEYS[4], ARGV[3])
if epoch > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], epoch)
end
return {1, enc}
"""

_RELEASE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local l = cjson.decode(cur)
  if l.id == ARGV[1] and l.tracker == ARGV[2] then
    redis.call('DEL', KEYS[1])
    redis.call('DEL', KEYS[2])
    return 1
  end
end
return 0
"""


def _keys(room: str) -> list[str]:
    return [f"tc:lock:{room}", "tc:epoch", f"tc:room_epoch:{room}", f"tc:token:{room}"]


def _record(encoded: bytes | str, ttl_s: float) -> LockRecord | None:
    if not encoded:
        return None
    data = json.loads(encoded)
    return LockRecord(str(data["id"]), str(data["name"]), data.get("host") or None,
                      int(data["port"]) if data.get("port") else None, int(data["epoch"]),
                      str(data["token"]), str(data["tracker"]), ttl_s)


def _record_meta(record: LockRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"id": record.holder_id, "name": record.holder_name, "host": record.host or "",
            "port": str(record.port or ""), "epoch": str(record.epoch),
            "token": record.token, "tracker": record.tracker}


def describe(url: str) -> str:
    """The store's URL without a password, for status lines and logs."""
    parts = urlparse(url)
    host = parts.hostname or "localhost"
    return f"redis://{host}:{parts.port or 6379}{parts.path or '/0'}"


class RedisLink:
    """Connects a shared-mode TrackerState to Redis and to the other trackers.

    Args:
        url: ``redis://HOST:PORT/DB``.
        state: the tracker's state (shared mode).
        dispatch: the server's way to send what the state returns.
    """

    def __init__(self, url: str, state: TrackerState,
                 dispatch: Callable[[list[Outbound]], None]) -> None:
        self.url = url
        self._state = state
        self._dispatch = dispatch
        self._redis = aioredis.from_url(url, socket_timeout=_CALL_TIMEOUT_S,
                                        socket_connect_timeout=_CALL_TIMEOUT_S)
        self._claim = self._redis.register_script(_CLAIM)
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)
        self._tasks: set[asyncio.Task[None]] = set()
        self._ok = False
        self._lock_ms = int(1000 * (state.config.lease_s + state.config.lease_grace_s))
        self._floor = int(time.time() * 1000)

    @property
    def ok(self) -> bool:
        """Whether the last call to Redis succeeded."""
        return self._ok

    async def start(self) -> None:
        """Load the other trackers' peers and start listening and ticking.

        Raises:
            RedisError, OSError: Redis does not answer at start (a tracker refuses to
                start on a store it cannot reach, rather than run split from it).
        """
        await self._redis.ping()
        self._set_ok(True)
        await self._load()
        self._spawn(self._listen())
        self._spawn(self._tick())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._redis.delete(f"tc:tracker:{self._state.tracker_id}")
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    def submit(self) -> None:
        """Run what the state queued (lock ops, peer changes); called after each event."""
        ops = self._state.take_lock_ops()
        changes = self._state.take_changes()
        if ops:
            for op in ops:
                self._spawn(self._run_op(op))
        if changes:
            self._spawn(self._publish_changes(changes))

    # --- locks -------------------------------------------------------------------------

    async def _run_op(self, op: LockOp) -> None:
        keys = _keys(op.room)
        ttl_s = self._lock_ms / 1000
        loop = asyncio.get_running_loop()
        try:
            if op.kind == "release":
                await self._release(keys=[keys[0], keys[3]],
                                    args=[op.peer_id, self._state.tracker_id])
                await self._publish({"op": "lock", "room": op.room, "lock": None})
                self._set_ok(True)
                return
            granted, encoded = await self._claim(keys=keys, args=[
                op.kind, op.peer_id, op.name, op.host or "", str(op.port or ""),
                self._state.tracker_id, self._lock_ms, self._floor, op.resume_epoch or 0,
                secrets.token_hex(16), op.token or ""])
            self._set_ok(True)
        except (RedisError, OSError) as exc:
            self._set_ok(False, exc)
            if op.kind == "claim":
                self._dispatch(self._state.lock_result(op, False, None, loop.time()))
            else:
                self._state.lock_unanswered(op)
            # A resume is left unanswered: the holder keeps its lease and retries on
            # its next reconnect; it is never told to step down for want of a store.
            return
        record = _record(encoded, ttl_s)
        self._dispatch(self._state.lock_result(op, bool(granted), record, loop.time()))
        if granted:
            await self._publish({"op": "lock", "room": op.room, "lock": _record_meta(record)})

    async def _renew_locks(self) -> None:
        """Keep our holders' locks alive in Redis (and re-assert them after a Redis
        restart); a lock that is someone else's there is lost here."""
        loop = asyncio.get_running_loop()
        for room, mine in self._state.local_locks():
            held, encoded = await self._renew(keys=_keys(room), args=[
                mine.holder_id, mine.epoch, mine.token, self._state.tracker_id,
                self._lock_ms, mine.holder_name, mine.host or "", str(mine.port or "")])
            if held:
                await self._publish({"op": "lock", "room": room, "lock": _record_meta(mine)})
            else:
                self._dispatch(self._state.lock_lost(
                    room, _record(encoded, self._lock_ms / 1000), loop.time()))

    # --- peers -------------------------------------------------------------------------

    async def _publish_changes(self, changes: list[PeerChange]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for change in changes:
                    key = f"tc:peer:{change.room}:{change.peer_id}"
                    if change.info is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, json.dumps({"tracker": self._state.tracker_id,
                                                  "room": change.room,
                                                  "info": change.info.to_meta()}),
                                 px=PEER_TTL_MS)
                    pipe.publish(CHANNEL, json.dumps(self._change_event(change)))
                await pipe.execute()
            self._set_ok(True)
        except (RedisError, OSError) as exc:
            self._set_ok(False, exc)

    def _change_event(self, change: PeerChange) -> dict[str, Any]:
        if change.info is None:
            return {"tracker": self._state.tracker_id, "op": "gone", "room": change.room,
                    "id": change.peer_id}
        return {"tracker": self._state.tracker_id, "op": "peer", "room": change.room,
                "info": change.info.to_meta()}

    async def _publish(self, event: dict[str, Any]) -> None:
        event["tracker"] = self._state.tracker_id
        await self._redis.publish(CHANNEL, json.dumps(event))

    async def _load(self) -> None:
        """Everyone the other live trackers list (at start, and after Redis is back)."""
        loop = asyncio.get_running_loop()
        keys = [k async for k in self._redis.scan_iter(match="tc:peer:*", count=1000)]
        values = await self._redis.mget(keys) if keys else []
        alive: dict[str, bool] = {}
        for raw in values:
            if raw is None:
                continue
            data = json.loads(raw)
            tracker = str(data["tracker"])
            if tracker == self._state.tracker_id:
                continue
            if tracker not in alive:
                alive[tracker] = bool(await self._redis.exists(f"tc:tracker:{tracker}"))
            if alive[tracker]:
                self._dispatch(self._state.remote_peer(
                    str(data["room"]), PeerInfo.from_meta(data["info"]), tracker, loop.time()))
        for key in [k async for k in self._redis.scan_iter(match="tc:lock:*", count=1000)]:
            name = (key.decode() if isinstance(key, bytes) else key)[len("tc:lock:"):]
            ttl_ms = await self._redis.pttl(key)
            record = _record(await self._redis.get(key) or b"", max(ttl_ms, 0) / 1000)
            if record is not None and record.tracker != self._state.tracker_id:
                self._dispatch(self._state.remote_lock(name, record, loop.time()))

    async def _listen(self) -> None:
        """Other trackers' news, for as long as we run (resubscribing after a loss)."""
        loop = asyncio.get_running_loop()
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    self._apply(json.loads(message["data"]), loop.time())
            except (RedisError, OSError) as exc:
                self._set_ok(False, exc)
                await asyncio.sleep(_TICK_S)  # Redis is away: try again (not a sync wait)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _apply(self, event: dict[str, Any], now: float) -> None:
        tracker = str(event.get("tracker"))
        if tracker == self._state.tracker_id:
            return
        room = str(event.get("room"))
        op = event.get("op")
        if op == "peer":
            self._dispatch(self._state.remote_peer(room, PeerInfo.from_meta(event["info"]),
                                                   tracker, now))
        elif op == "gone":
            self._dispatch(self._state.remote_peer_gone(room, str(event["id"]), now))
        elif op == "lock":
            meta = event.get("lock")
            record = _record(json.dumps(meta), self._lock_ms / 1000) if meta else None
            self._dispatch(self._state.remote_lock(room, record, now))

    # --- the periodic round ---------------------------------------------------------------

    async def _tick(self) -> None:
        """Every second: our liveness key, our locks, other trackers' liveness; every
        few seconds our peer records' TTLs. After an outage: a full resync."""
        loop = asyncio.get_running_loop()
        rounds = 0
        while True:
            try:
                was_ok = self._ok
                await self._redis.set(f"tc:tracker:{self._state.tracker_id}", "1",
                                      px=TRACKER_TTL_MS)
                self._set_ok(True)
                if not was_ok:
                    log.info("store back: re-publishing our peers, re-reading the others'")
                    await self._publish_changes(self._state.local_peers())
                    await self._load()
                await self._renew_locks()
                for tracker in self._state.remote_trackers():
                    if not await self._redis.exists(f"tc:tracker:{tracker}"):
                        log.info("tracker %s is gone: dropping its peers", tracker)
                        self._dispatch(self._state.remote_tracker_gone(tracker, loop.time()))
                if rounds % 10 == 0:
                    await self._publish_changes(self._state.local_peers())
            except (RedisError, OSError) as exc:
                self._set_ok(False, exc)
            rounds += 1
            await asyncio.sleep(_TICK_S)  # the period, not a sync wait

    def _set_ok(self, ok: bool, exc: BaseException | None = None) -> None:
        if ok != self._ok:
            if ok:
                log.info("store %s answers", describe(self.url))
            else:
                log.warning("store %s fails: %s", describe(self.url), exc)
        self._ok = ok
        self._state.set_store_health(describe(self.url), ok)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
