"""Limit counters in Redis (``[inference.state] redis_url``): one count for every instance that shares it.

Each admission and each settlement is one Lua script (atomic on the server; time from the server's
``TIME``, so instance clocks do not matter). Per key, in one hash slot (``sg:{key_id}:…``):
  * ``hits``  sorted set req -> admission time: the sliding-minute request log (rpm);
  * ``tok``   hash req -> reserved/settled tokens, plus ``_sum``: tokens in the window (tpm);
  * ``live``  sorted set req -> lease expiry, with ``cost`` hash req -> "period|USD": requests in
    flight (max streams) and the budget they reserved. Each instance renews the leases of its own live
    requests every 15 s; a crashed instance's requests expire after ``LEASE`` s and their reservation
    is released by the next admission of that key;
  * ``spend:{period}`` hash spent/reserved USD (budget), TTL past the period's end.
Every key carries a TTL, so idle keys vanish. Each worker uses at most ``POOL_MAX`` connections (more
requests in flight queue for one, up to ``lock_timeout``). Errors and timeouts raise ``StoreUnavailable``
(the governor applies ``counter_failure``). Must not know about HTTP, protocols or prices.
"""

from __future__ import annotations

import time
from typing import Any

from sluicegate.teams.keys import KeyRecord
from sluicegate.teams.store import WINDOW, Denied, Reservation, StoreUnavailable

POOL_MAX = 64  # connections to Redis per worker; more requests in flight wait for one (<= lock_timeout)
LEASE = 60  # seconds a live request's slot survives without renewal (renewed every 15 s)

# KEYS: [1] live, [2] cost, then per window i: [1 + 2i] hits, [2 + 2i] tok.
# ARGV: [1] window s, [2] key id, [3] max streams, [4] budget (-1 none), [5] tokens, [6] cost, [7] req,
#       [8] period, [9] lease s, [10] spend ttl s, [11] windows, then per window i: [10 + 2i] rpm, [11 + 2i] tpm.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window, streams, budget = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tokens, cost, req, period = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8]
local lease, spend_ttl, nwin = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local prefix = 'sg:{' .. ARGV[2] .. '}:spend:'
-- live requests whose lease ran out (their instance died): release their budget reservation
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 1, #dead do
  local held = redis.call('HGET', KEYS[2], dead[i])
  if held then
    local sep = string.find(held, '|', 1, true)
    redis.call('HINCRBYFLOAT', prefix .. string.sub(held, 1, sep - 1), 'reserved', -tonumber(string.sub(held, sep + 1)))
    redis.call('HDEL', KEYS[2], dead[i])
  end
end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) end
for w = 1, nwin do
  local hits, tok = KEYS[1 + 2 * w], KEYS[2 + 2 * w]
  local rpm, tpm = tonumber(ARGV[10 + 2 * w]), tonumber(ARGV[11 + 2 * w])
  local expired = redis.call('ZRANGEBYSCORE', hits, '-inf', now - window)
  if #expired > 0 then
    local drop = 0
    for i = 1, #expired do
      drop = drop + tonumber(redis.call('HGET', tok, expired[i]) or '0')
      redis.call('HDEL', tok, expired[i])
    end
    redis.call('ZREMRANGEBYSCORE', hits, '-inf', now - window)
    redis.call('HINCRBY', tok, '_sum', -drop)
  end
  local n = redis.call('ZCARD', hits)
  local retry = 1
  local oldest = redis.call('ZRANGE', hits, 0, 0, 'WITHSCORES')
  if #oldest > 0 then retry = math.min(window, math.max(1, tonumber(oldest[2]) + window - now)) end
  if rpm > 0 and n >= rpm then return {'rpm', tostring(retry), tostring(n), tostring(rpm)} end
  local used = tonumber(redis.call('HGET', tok, '_sum') or '0')
  if tpm > 0 and used + math.min(tokens, tpm) > tpm then
    return {'tpm', tostring(retry), tostring(used), tostring(tpm)}
  end
end
if streams > 0 then
  local live = redis.call('ZCARD', KEYS[1])
  if live >= streams then return {'streams', '1', tostring(live), tostring(streams)} end
end
if budget >= 0 then
  local spend = prefix .. period
  local spent = tonumber(redis.call('HGET', spend, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', spend, 'reserved') or '0')
  if spent >= budget or spent + reserved + cost > budget then
    return {'budget', '0', tostring(spent + reserved), tostring(budget)}
  end
  redis.call('HINCRBYFLOAT', spend, 'reserved', cost)
  redis.call('EXPIRE', spend, spend_ttl)
end
for w = 1, nwin do
  local hits, tok = KEYS[1 + 2 * w], KEYS[2 + 2 * w]
  local tpm = tonumber(ARGV[11 + 2 * w])
  local held = tokens
  if tpm > 0 then held = math.min(tokens, tpm) end
  redis.call('ZADD', hits, now, req)
  redis.call('HSET', tok, req, held)
  redis.call('HINCRBY', tok, '_sum', held)
  redis.call('EXPIRE', hits, window + 5)
  redis.call('EXPIRE', tok, window + 5)
end
redis.call('ZADD', KEYS[1], now + lease, req)
redis.call('HSET', KEYS[2], req, period .. '|' .. ARGV[6])
redis.call('EXPIRE', KEYS[1], lease + 5)
redis.call('EXPIRE', KEYS[2], lease + 5)
return {}
"""

# KEYS as for _ADMIT. ARGV: [1] req, [2] tokens, [3] cost, [4] period, [5] "1" if budgeted, [6] key id,
# [7] spend ttl, [8] windows.
_SETTLE = """
local req, tokens, cost, period = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
for w = 1, tonumber(ARGV[8]) do
  local tok = KEYS[2 + 2 * w]
  local old = redis.call('HGET', tok, req)
  if old then
    redis.call('HSET', tok, req, tokens)
    redis.call('HINCRBY', tok, '_sum', tokens - tonumber(old))
  end
end
redis.call('ZREM', KEYS[1], req)
local held = redis.call('HGET', KEYS[2], req)
redis.call('HDEL', KEYS[2], req)
if ARGV[5] == '1' then
  local spend = 'sg:{' .. ARGV[6] .. '}:spend:' .. period
  redis.call('HINCRBYFLOAT', spend, 'spent', cost)
  if held then
    local sep = string.find(held, '|', 1, true)
    redis.call('HINCRBYFLOAT', spend, 'reserved', -tonumber(string.sub(held, sep + 1)))
  end
  redis.call('EXPIRE', spend, tonumber(ARGV[7]))
end
return 1
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 1, #KEYS do
  if redis.call('ZSCORE', KEYS[i], ARGV[i + 1]) then
    redis.call('ZADD', KEYS[i], now + tonumber(ARGV[1]), ARGV[i + 1])
  end
end
return 1
"""


def _keys(key: KeyRecord, model: str) -> tuple[list[str], list[int]]:
    """Redis keys (all in the key's hash slot) and per-window rpm/tpm for a request for ``model``."""
    p = f"sg:{{{key.id}}}:"
    keys = [p + "live", p + "cost"]
    limits: list[int] = []
    for wid, rpm, tpm in key.windows(model):
        suffix = wid[len(key.id):]  # "" for the key's own window, "|model" for a per-model one
        keys += [p + "hits" + suffix, p + "tok" + suffix]
        limits += [rpm, tpm]
    return keys, limits


def _spend_ttl(key: KeyRecord) -> int:
    return 40 * 86400 if key.period == "month" else 2 * 86400


class RedisLimits:
    """``LimitStore`` on Redis (``redis`` asyncio client; one connection pool per worker process)."""

    def __init__(self, url: str, timeout: float) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.timeout = min(timeout, 2.0)
        # A bounded pool that queues (up to the timeout) rather than failing: redis-py's default pool
        # raises "Too many connections" past 100 requests in flight, which a burst reaches at once.
        self._pool: Any = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_MAX, timeout=self.timeout, socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout, health_check_interval=10)
        self._redis: Any = aioredis.Redis(connection_pool=self._pool)
        self._admit = self._redis.register_script(_ADMIT)
        self._settle = self._redis.register_script(_SETTLE)
        self._renew = self._redis.register_script(_RENEW)
        self._live: dict[str, str] = {}  # req -> key id, for lease renewal

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        import redis.exceptions as rexc

        try:
            return await script(keys=keys, args=args)
        except (rexc.ConnectionError, rexc.TimeoutError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        except rexc.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def admit(self, key: KeyRecord, res: Reservation, now: float) -> Denied | None:
        keys, limits = _keys(key, res.model)
        out = await self._call(self._admit, keys, [
            WINDOW, key.id, key.max_streams or 0, -1 if key.budget is None else key.budget, res.tokens,
            repr(res.cost), res.req, res.period, LEASE, _spend_ttl(key), len(limits) // 2, *limits])
        if not out:
            self._live[res.req] = key.id
            return None
        reason = out[0].decode() if isinstance(out[0], bytes) else str(out[0])
        return Denied(reason, float(out[1]), float(out[3]), float(out[2]))  # type: ignore[arg-type]

    async def settle(self, key: KeyRecord, res: Reservation, tokens: int, cost: float) -> None:
        self._live.pop(res.req, None)
        keys, limits = _keys(key, res.model)
        await self._call(self._settle, keys, [
            res.req, tokens, repr(cost), res.period, "1" if key.budget is not None else "0", key.id,
            _spend_ttl(key), len(limits) // 2])

    async def reap(self, now: float) -> int:
        """Renew the leases of this process's live requests (expired ones are pruned by admissions)."""
        live = list(self._live.items())
        for i in range(0, len(live), 500):
            part = live[i:i + 500]
            await self._call(self._renew, [f"sg:{{{k}}}:live" for _, k in part], [LEASE, *[r for r, _ in part]])
        return 0

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.disconnect()

    async def ping(self) -> float:
        t = time.perf_counter()
        await self._redis.ping()
        return time.perf_counter() - t
