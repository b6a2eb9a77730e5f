"""Conversation limits: Teams' per-conversation sliding windows, kept in this process.

Teams allows one bot, in one conversation, 7 sends per second, 8 per 2 s, 60 per 30 s and 1,800 per
hour. These are respected before sending, not discovered with a 429. They are kept in memory, per
process, with no table operation per message: a conversation's burst (a dialog's prompts, a post and
its replies, one recipient's message in a page) is sent from one process. Two processes writing to
one conversation at the same moment would each keep their own count.

Memory stays bounded: a conversation idle for the longest window is forgotten (it has nothing left
to count), and past `max_conversations` the least recently used one goes first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

# (sends, seconds): at most `sends` in any window of `seconds`.
TEAMS_CONVERSATION_LIMITS: tuple[tuple[int, float], ...] = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))


class ConversationLimiter:
    """`acquire(conversation_key)` blocks until one more send keeps every window within its limit.

    `margin` seconds are added to each window: the HTTP request leaves a little after `acquire`
    returns, and the channel counts arrivals, not our clock.
    """

    def __init__(self, limits: tuple[tuple[int, float], ...] = TEAMS_CONVERSATION_LIMITS, *, margin: float = 0.05,
                 max_conversations: int = 10_000, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not limits or any(n < 1 or seconds <= 0 for n, seconds in limits):
            raise ValueError("limits must be (sends >= 1, seconds > 0) pairs")
        self.limits = tuple(sorted(limits, key=lambda limit: limit[1]))
        self.margin = margin
        self.max_conversations = max_conversations
        self._longest = max(seconds for _, seconds in self.limits) + margin
        self._deepest = max(n for n, _ in self.limits)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._sent: OrderedDict[str, deque[float]] = OrderedDict()  # least recently used first
        self._calls = 0

    def acquire(self, conversation_key: str) -> float:
        """Wait until a send to the conversation is within every limit, and count it; returns seconds waited."""
        started = self._clock()
        while True:
            with self._lock:
                now = self._clock()
                sent = self._history(conversation_key, now)
                ready = self._ready_at(sent)
                if ready <= now:
                    sent.append(now)  # counted at the moment it is allowed: what the windows check
                    return now - started
            self._sleep(ready - now)

    def tracked(self) -> int:
        """How many conversations are remembered (memory is bounded by this)."""
        with self._lock:
            return len(self._sent)

    def _ready_at(self, sent: deque[float]) -> float:
        ready = -float("inf")
        for n, seconds in self.limits:
            if len(sent) >= n:  # the n-th send back must leave the window first
                ready = max(ready, sent[-n] + seconds + self.margin)
        return ready

    def _history(self, key: str, now: float) -> deque[float]:
        sent = self._sent.get(key)
        if sent is None:
            sent = self._sent[key] = deque(maxlen=self._deepest)
        self._sent.move_to_end(key)
        while sent and sent[0] <= now - self._longest:
            sent.popleft()
        self._calls += 1
        if self._calls % 1000 == 0 or len(self._sent) > self.max_conversations:
            self._forget(now, keep=key)
        return sent

    def _forget(self, now: float, *, keep: str) -> None:
        idle = [key for key, sent in self._sent.items()
                if key != keep and (not sent or sent[-1] <= now - self._longest)]
        for key in idle:
            del self._sent[key]
        while len(self._sent) > max(1, self.max_conversations):  # `keep` is the most recent: it goes last
            self._sent.popitem(last=False)

