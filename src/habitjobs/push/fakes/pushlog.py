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
    def __init__(self, path: Path | None = None, *, keep: int = 1000) -> None:
        self._lock = threading.Lock()
        self._path = path
        self._recent: collections.deque[Received] = collections.deque(maxlen=keep)
        self._by_token: dict[str, list[Received]] = collections.defaultdict(list)
        self.requests = 0  # every request that reached a fake, answered or not

    def add(self, item: Received) -> None:
        with self._lock:
            self._recent.append(item)
            self._by_token[item.token].append(item)
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

    def total(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._by_token.values())

    def recent(self, limit: int = 100) -> list[Received]:
        with self._lock:
            return list(self._recent)[-limit:][::-1]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {token: len(items) for token, items in self._by_token.items()}
