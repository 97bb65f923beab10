"""Reading SuperNode logs as they grow, to act at chosen moments (a kill while a firm uploads).

A SuperNode logs `[RUN r, ROUND g]` before each `Receiving: <type> message` and each
`Sending: <type> message`, `SuperNode ID: n` when the SuperLink accepts it, and "Failed to
activate SuperNode" when it is refused; the SuperLink logs "Push replies from node_id=n" when a
reply's header arrives, before its data (so a kill then lands in the middle of the upload).
`Watch` reads every log every few milliseconds in a thread, keeps each line as an `Event` with
the time it was seen, and runs each trigger's action the first time its condition holds.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_HEADER = re.compile(r"\[RUN (\d+), ROUND (\w+)\]")
_MESSAGE = re.compile(r"(Receiving|Sending): (\S+) message")
_NODE_ID = re.compile(r"SuperNode ID: (\d+)")
_PUSHED = re.compile(r"Push replies from node_id=(\d+)")
SUPERLINK = "superlink"
"""The key of the SuperLink's log in `Watch.logs`."""


@dataclass(frozen=True)
class Event:
    firm: str
    seen: float
    """time.monotonic() when the line was read (within a few ms of being written)."""
    kind: str
    """`Receiving`, `Sending`, `accepted`, `refused`, `reconnected`, `supervise`, or `pushed`
    (the SuperLink got the header of a reply from `firm`)."""
    run: int = 0
    round: str = ""
    message_type: str = ""
    text: str = ""


@dataclass
class Trigger:
    condition: Callable[[list[Event]], bool]
    action: Callable[[], None]
    fired_at: float | None = None


@dataclass
class Watch:
    logs: dict[str, Path]
    """Firm -> its SuperNode's log (the supervisor's output: every restart appends), and
    `SUPERLINK` -> the SuperLink's log."""
    events: list[Event] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    node_ids: dict[str, int] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._offsets = dict.fromkeys(self.logs, 0)
        self._partial = dict.fromkeys(self.logs, "")
        self._headers: dict[str, tuple[int, str]] = dict.fromkeys(self.logs, (0, ""))
        self._thread = threading.Thread(target=self._loop, name="watch", daemon=True)
        self._thread.start()

    def on(self, condition: Callable[[list[Event]], bool], action: Callable[[], None]) -> Trigger:
        trigger = Trigger(condition, action)
        with self._lock:
            self.triggers.append(trigger)
        return trigger

    def count(self, firm: str, kind: str, **where: object) -> int:
        with self._lock:
            return sum(
                1
                for e in self.events
                if e.firm == firm
                and e.kind == kind
                and all(getattr(e, k) == v for k, v in where.items())
            )

    def first_after(self, moment: float, **where: object) -> Event | None:
        """The first event seen after `moment` matching `where` (attribute -> value)."""
        with self._lock:
            return next(
                (
                    e
                    for e in self.events
                    if e.seen > moment and all(getattr(e, k) == v for k, v in where.items())
                ),
                None,
            )

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.errors:
                raise self.errors[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:g} s for {what}")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for firm in self.logs:
                    self._read(firm)
                self._fire()
            except BaseException as error:  # surfaced by wait_until
                self.errors.append(error)
                return
            time.sleep(0.005)

    def _read(self, firm: str) -> None:
        path = self.logs[firm]
        if not path.is_file():
            return
        with open(path, "rb") as handle:
            handle.seek(self._offsets[firm])
            chunk = handle.read()
        if not chunk:
            return
        self._offsets[firm] += len(chunk)
        text = self._partial[firm] + chunk.decode(errors="replace")
        *lines, self._partial[firm] = text.split("\n")
        now = time.monotonic()
        with self._lock:
            for line in lines:
                self._parse(firm, line, now)

    def _parse(self, firm: str, line: str, now: float) -> None:
        if firm == SUPERLINK:
            if pushed := _PUSHED.search(line):
                sender = int(pushed.group(1))
                owner = next((f for f, n in self.node_ids.items() if n == sender), "")
                self.events.append(Event(owner, now, "pushed", text=line))
            return
        if header := _HEADER.search(line):
            self._headers[firm] = (int(header.group(1)), header.group(2))
        elif message := _MESSAGE.search(line):
            run, round_ = self._headers[firm]
            self.events.append(
                Event(firm, now, message.group(1), run, round_, message.group(2), line)
            )
        elif node := _NODE_ID.search(line):
            self.node_ids[firm] = int(node.group(1))
            self.events.append(Event(firm, now, "accepted", text=line))
        elif "Failed to activate SuperNode" in line:
            self.events.append(Event(firm, now, "refused", text=line))
        elif "Connection successful" in line:
            self.events.append(Event(firm, now, "reconnected", text=line))
        elif line.startswith("supervise:"):
            self.events.append(Event(firm, now, "supervise", text=line))

    def _fire(self) -> None:
        with self._lock:
            pending = [t for t in self.triggers if t.fired_at is None]
            events = list(self.events)
        for trigger in pending:
            if trigger.condition(events):
                trigger.fired_at = time.monotonic()
                trigger.action()
