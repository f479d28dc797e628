"""The usage ledger's write path: a bounded in-memory queue drained by one batch-writer thread.

``put`` is what requests call (after their response ended): an append to a bounded deque, never a
wait; a full queue drops the row, counts it (``sluicegate_teams_ledger_dropped_total``) and logs at most
once per 10 s. The writer thread inserts batches of up to ``ledger_batch_max`` rows every
``ledger_flush_interval``. When the ledger store fails (database down), rows are appended to a spool
file in ``data_dir`` (JSON lines, bounded by ``spool_max_bytes``) and replayed, oldest first, once the
store answers again; inserts are idempotent on (request id, time), so a replay never double-counts.
Must not know about HTTP, keys or prices.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from pathlib import Path

from sluicegate.teams import metrics as tm
from sluicegate.teams.store import LedgerRow, LedgerStore

log = logging.getLogger("sluicegate.teams.ledger")


class LedgerWriter:
    def __init__(self, store: LedgerStore, spool_dir: Path, *, queue_max: int, batch_max: int,
                 interval: float, spool_max_bytes: int, retention_days: int = 0) -> None:
        self.store = store
        self.spool = spool_dir / f"ledger-spool-{os.getpid()}.jsonl"
        self.spool_dir = spool_dir
        self.queue_max = queue_max
        self.batch_max = batch_max
        self.interval = interval
        self.spool_max_bytes = spool_max_bytes
        self.retention = retention_days * 86400.0
        self._pruned = 0.0
        self._q: collections.deque[LedgerRow] = collections.deque()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_drop_log = 0.0
        self.dropped = 0
        self.written = 0
        self.store_down = False

    def start(self) -> None:
        if self._thread is None:
            self.spool = self.spool_dir / f"ledger-spool-{os.getpid()}.jsonl"
            self._thread = threading.Thread(target=self._run, name="sluicegate-ledger", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def put(self, row: LedgerRow) -> bool:
        if len(self._q) >= self.queue_max:
            self.dropped += 1
            tm.LEDGER_DROPPED.inc()
            now = time.monotonic()
            if now - self._last_drop_log > 10:
                self._last_drop_log = now
                log.warning("usage ledger queue full (%d rows): row dropped (%d dropped so far)",
                            self.queue_max, self.dropped)
            return False
        self._q.append(row)
        if len(self._q) >= self.batch_max:
            self._wake.set()
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._stop = False

    def flush(self) -> None:
        """Write everything queued now (from any thread; used at shutdown and by tests)."""
        self._drain()

    # ---- writer thread ----

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self._drain()
                self._prune()
            except Exception:  # never let the writer die
                log.exception("usage ledger writer failed")
        self._drain()

    _lock = threading.Lock()

    def _drain(self) -> None:
        with self._lock:
            self._replay()
            while self._q:
                batch: list[LedgerRow] = []
                while self._q and len(batch) < self.batch_max:
                    batch.append(self._q.popleft())
                self._write(batch)

    def _prune(self) -> None:
        now = time.time()
        if not self.retention or self.store_down or now - self._pruned < 3600:
            return
        self._pruned = now
        n = self.store.prune(now - self.retention)
        if n:
            log.info("usage ledger: %d rows older than %d days deleted", n, self.retention // 86400)

    def _write(self, batch: list[LedgerRow]) -> None:
        if not self.store_down:
            try:
                self.store.insert(batch)
                self.written += len(batch)
                tm.LEDGER_WRITTEN.inc(len(batch))
                return
            except Exception as exc:
                self.store_down = True
                tm.LEDGER_STORE_DOWN.set(1)
                log.warning("usage ledger store unavailable (%s): spooling rows to %s", exc, self.spool)
        self._to_spool(batch)

    def _to_spool(self, batch: list[LedgerRow]) -> None:
        try:
            size = self.spool.stat().st_size
        except FileNotFoundError:
            size = 0
        data = "".join(json.dumps(list(r), separators=(",", ":")) + "\n" for r in batch).encode()
        if size + len(data) > self.spool_max_bytes:
            self.dropped += len(batch)
            tm.LEDGER_DROPPED.inc(len(batch))
            log.error("usage ledger spool %s is full (%d bytes): %d rows dropped", self.spool, size, len(batch))
            return
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        with self.spool.open("ab") as f:
            f.write(data)
        tm.LEDGER_SPOOLED.inc(len(batch))

    def _replay(self) -> None:
        """Spooled rows (this process's and those left by dead ones) go first once the store answers."""
        spools = sorted(self.spool_dir.glob("ledger-spool-*.jsonl")) if self.spool_dir.exists() else []
        if not spools:
            return
        for path in spools:
            if path != self.spool and _owner_alive(path):
                continue
            try:
                lines = path.read_bytes().splitlines()
            except FileNotFoundError:
                continue
            rows = [tuple(json.loads(line)) for line in lines if line.strip()]
            try:
                for i in range(0, len(rows), self.batch_max):
                    self.store.insert(rows[i:i + self.batch_max])
            except Exception:
                self.store_down = True
                tm.LEDGER_STORE_DOWN.set(1)
                return
            path.unlink(missing_ok=True)  # another worker may have replayed a dead one's spool too (idempotent)
            self.written += len(rows)
            tm.LEDGER_WRITTEN.inc(len(rows))
            if self.store_down:
                log.info("usage ledger store is back: %d spooled rows replayed from %s", len(rows), path)
        self.store_down = False
        tm.LEDGER_STORE_DOWN.set(0)


def _owner_alive(path: Path) -> bool:
    try:
        pid = int(path.stem.rsplit("-", 1)[1])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
