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
Every key carries a TTL, so idle keys vanish. Errors and timeouts raise ``StoreUnavailable`` (the
governor applies ``counter_failure``). Must not know about HTTP, protocols or prices.
"""

from __future__ import annotations

import time
from typing import Any

from sluicegate.teams.keys import KeyRecord
from sluicegate.teams.store import WINDOW, Denied, Reservation, StoreUnavailable

LEASE = 60  # seconds a live request's slot survives without renewal (renewed every 15 s)

_PRUNE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)
if #expired > 0 then
  local drop = 0
  for i = 1, #expired do
    drop = drop + tonumber(redis.call('HGET', KEYS[2], expired[i]) or '0')
    redis.call('HDEL', KEYS[2], expired[i])
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  redis.call('HINCRBY', KEYS[2], '_sum', -drop)
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for i = 1, #dead do
  local held = redis.call('HGET', KEYS[4], dead[i])
  if held then
    local sep = string.find(held, '|', 1, true)
    local spend = 'sg:{' .. ARGV[3] .. '}:spend:' .. string.sub(held, 1, sep - 1)
    redis.call('HINCRBYFLOAT', spend, 'reserved', -tonumber(string.sub(held, sep + 1)))
    redis.call('HDEL', KEYS[4], dead[i])
  end
end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
"""

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window, rpm, tpm, streams = tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local budget, tokens, cost = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local req, period, lease, spend_ttl = ARGV[10], ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13])
PRUNE
if rpm > 0 or tpm > 0 then
  local n = redis.call('ZCARD', KEYS[1])
  local retry = 1
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #oldest > 0 then retry = math.max(1, tonumber(oldest[2]) + window - now) end
  if rpm > 0 and n >= rpm then return {'rpm', tostring(retry), tostring(n)} end
  local used = tonumber(redis.call('HGET', KEYS[2], '_sum') or '0')
  if tpm > 0 and used + tokens > tpm then return {'tpm', tostring(retry), tostring(used)} end
end
if streams > 0 then
  local live = redis.call('ZCARD', KEYS[3])
  if live >= streams then return {'streams', '1', tostring(live)} end
end
if budget >= 0 then
  local spend = 'sg:{' .. ARGV[3] .. '}:spend:' .. period
  local spent = tonumber(redis.call('HGET', spend, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', spend, 'reserved') or '0')
  if spent >= budget or spent + reserved + cost > budget then
    return {'budget', '0', tostring(spent + reserved)}
  end
  redis.call('HINCRBYFLOAT', spend, 'reserved', cost)
  redis.call('EXPIRE', spend, spend_ttl)
end
if rpm > 0 or tpm > 0 then
  redis.call('ZADD', KEYS[1], now, req)
  redis.call('HSET', KEYS[2], req, tokens)
  redis.call('HINCRBY', KEYS[2], '_sum', tokens)
  redis.call('EXPIRE', KEYS[1], window + 5)
  redis.call('EXPIRE', KEYS[2], window + 5)
end
redis.call('ZADD', KEYS[3], now + lease, req)
redis.call('HSET', KEYS[4], req, period .. '|' .. ARGV[9])
redis.call('EXPIRE', KEYS[3], lease + 5)
redis.call('EXPIRE', KEYS[4], lease + 5)
return {}
""".replace("PRUNE", _PRUNE.replace("local now = tonumber(ARGV[1])\n", ""))

_SETTLE = """
local req, tokens, cost, period = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local old = redis.call('HGET', KEYS[2], req)
if old then
  redis.call('HSET', KEYS[2], req, tokens)
  redis.call('HINCRBY', KEYS[2], '_sum', tokens - tonumber(old))
end
redis.call('ZREM', KEYS[3], req)
local held = redis.call('HGET', KEYS[4], req)
redis.call('HDEL', KEYS[4], req)
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


def _keys(key_id: str) -> list[str]:
    p = f"sg:{{{key_id}}}:"
    return [p + "hits", p + "tok", p + "live", p + "cost"]


class RedisLimits:
    """``LimitStore`` on Redis (``redis`` asyncio client; one connection pool per worker process)."""

    def __init__(self, url: str, timeout: float) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.timeout = min(timeout, 2.0)
        self._redis: Any = aioredis.Redis.from_url(url, socket_timeout=self.timeout,
                                                   socket_connect_timeout=self.timeout, health_check_interval=10)
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
        spend_ttl = 40 * 86400 if key.period == "month" else 2 * 86400
        out = await self._call(self._admit, _keys(key.id), [
            0, WINDOW, key.id, key.rpm or 0, key.tpm or 0, key.max_streams or 0,
            -1 if key.budget is None else key.budget, res.tokens, repr(res.cost), res.req, res.period, LEASE,
            spend_ttl])
        if not out:
            self._live[res.req] = key.id
            return None
        reason = out[0].decode() if isinstance(out[0], bytes) else str(out[0])
        limit = {"rpm": key.rpm, "tpm": key.tpm, "streams": key.max_streams, "budget": key.budget}.get(reason)
        return Denied(reason, float(out[1]), float(limit or 0), float(out[2]))  # type: ignore[arg-type]

    async def settle(self, key: KeyRecord, res: Reservation, tokens: int, cost: float) -> None:
        self._live.pop(res.req, None)
        spend_ttl = 40 * 86400 if key.period == "month" else 2 * 86400
        await self._call(self._settle, _keys(key.id), [
            res.req, tokens, repr(cost), res.period, "1" if key.budget is not None else "0", key.id, spend_ttl])

    async def reap(self, now: float) -> int:
        """Renew the leases of this process's live requests (expired ones are pruned by admissions)."""
        live = list(self._live.items())
        for i in range(0, len(live), 500):
            part = live[i:i + 500]
            await self._call(self._renew, [_keys(k)[2] for _, k in part], [LEASE, *[r for r, _ in part]])
        return 0

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> float:
        t = time.perf_counter()
        await self._redis.ping()
        return time.perf_counter() - t
