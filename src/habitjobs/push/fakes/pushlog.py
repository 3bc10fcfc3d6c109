"""What the fakes accepted: the pushes a phone would have shown. Thread-safe (tests read it while the fakes'
own thread writes it); optionally appended to a JSON-lines file for ``habitjobs dev``."""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Received:
    provider: str
    env: str
    token: str
    collapse_id: str
    title: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class PushLog:
    def __init__(self, path: Path | None = None, *, keep: int = 1000, tokens: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._path = path
        self._recent: collections.deque[Received] = collections.deque(maxlen=keep)
        # Per device token, for tests and the dev page; the oldest tokens go past ``tokens`` (the fakes
        # run for as long as ``habitjobs dev`` does).
        self._by_token: collections.OrderedDict[str, list[Received]] = collections.OrderedDict()
        self._max_tokens = tokens
        self.requests = 0  # every request that reached a fake, answered or not

    def add(self, item: Received) -> None:
        with self._lock:
            self._recent.append(item)
            self._by_token.setdefault(item.token, []).append(item)
            if len(self._by_token) > self._max_tokens:
                self._by_token.popitem(last=False)
        if self._path is not None:
            with self._path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(item), ensure_ascii=False) + "\n")

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def received(self, token: str) -> list[Received]:
        with self._lock:
            return list(self._by_token.get(token, []))

    def count(self, token: str) -> int:
        with self._lock:
            return len(self._by_token.get(token, []))

    def recent(self, limit: int = 100) -> list[Received]:
        with self._lock:
            return list(self._recent)[-limit:][::-1]
