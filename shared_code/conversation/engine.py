"""The dialog engine: dialogs as plain objects, and one turn of a stack of them, computed without I/O.

A turn only computes: what the stack becomes, what to say, and which effects
(a scheduled dialog, a survey answer) to carry out. The caller saves the stack
with its ETag first and carries out the rest only after the save succeeded, so a
turn re-run after a conflict never says or records anything twice.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from shared_code.conversation.state import Frame


class DialogStatus(Enum):
    WAITING = "waiting"  # the dialog stays on the stack and gets the user's next message
    ENDED = "ended"  # the dialog is popped; the one below resumes with the result


@dataclass(frozen=True, slots=True)
class ScheduleDialog:
    """Start `dialog_id` proactively in this conversation after a delay (a delayed queue job)."""

    dialog_id: str
    delay_seconds: float


@dataclass(frozen=True, slots=True)
class RecordAnswer:
    """Keep a survey answer. (run id, index) names it, so recording it again changes nothing."""

    run_id: str
    index: int
    question: str
    answer: str


Effect = ScheduleDialog | RecordAnswer


@dataclass(frozen=True, slots=True)
class Step:
    """What a dialog did with a turn: what to say, whether it ended (and with what), its effects."""

    say: tuple[str, ...] = ()
    status: DialogStatus = DialogStatus.WAITING
    result: Any = None
    effects: tuple[Effect, ...] = ()

    @classmethod
    def wait(cls, *say: str, effects: tuple[Effect, ...] = ()) -> Step:
        return cls(say, DialogStatus.WAITING, None, effects)

    @classmethod
    def end(cls, *say: str, result: Any = None, effects: tuple[Effect, ...] = ()) -> Step:
        return cls(say, DialogStatus.ENDED, result, effects)


@dataclass(frozen=True, slots=True)
class DialogContext:
    """What a dialog sees of a turn. `state` is its own frame's state: it changes it in place."""

    state: dict[str, Any]
    conversation_id: str = ""
    run_id: str = ""  # set on begin: names this run of the dialog (a proactive start's job id)


class Dialog(Protocol):
    def begin(self, ctx: DialogContext) -> Step: ...

    def continue_(self, ctx: DialogContext, text: str) -> Step: ...

    def resume(self, ctx: DialogContext, result: Any) -> Step: ...


class DialogLoop(RuntimeError):
    """A dialog ended as soon as it began, over and over: a bug in a dialog, not in the input."""


@dataclass(frozen=True, slots=True)
class TurnOutput:
    frames: tuple[Frame, ...]
    say: tuple[str, ...]
    effects: tuple[Effect, ...]


# A root that ends is begun again; more restarts than this in one turn is a dialog bug.
_MAX_RESTARTS = 3


class StackRun:
    """One turn over a stack: begin or continue dialogs, collect what they say and do."""

    def __init__(
        self, frames: tuple[Frame, ...], dialogs: Mapping[str, Dialog], root: str, conversation_id: str = ""
    ) -> None:
        self.dialogs = dialogs
        self.root = root
        self.conversation_id = conversation_id
        # Copies: a turn that is re-run after a conflict must start from what was read.
        self._stack: list[tuple[str, dict[str, Any]]] = [(f.dialog_id, copy.deepcopy(f.state)) for f in frames]
        self._say: list[str] = []
        self._effects: list[Effect] = []
        self._restarts = 0

    @classmethod
    def over(
        cls, frames: tuple[Frame, ...], dialogs: Mapping[str, Dialog], root: str, conversation_id: str = ""
    ) -> StackRun:
        return cls(frames, dialogs, root, conversation_id)

    @property
    def depth(self) -> int:
        return len(self._stack)

    def say(self, *texts: str) -> None:
        self._say.extend(texts)

    def push(self, dialog_id: str, state: dict[str, Any] | None = None) -> None:
        """Put a dialog on the stack without beginning it (it speaks first when resumed)."""
        self._stack.append((dialog_id, dict(state or {})))

    def begin(self, dialog_id: str, run_id: str = "") -> None:
        self._stack.append((dialog_id, {}))
        self._apply(self.dialogs[dialog_id].begin(self._ctx(run_id)))

    def continue_(self, text: str) -> None:
        """Give the user's message to the dialog on top; an empty stack begins the root."""
        if not self._stack:
            self.begin(self.root)
            return
        dialog_id, _ = self._stack[-1]
        self._apply(self.dialogs[dialog_id].continue_(self._ctx(), text))

    def output(self) -> TurnOutput:
        frames = tuple(Frame(dialog_id, state) for dialog_id, state in self._stack)
        return TurnOutput(frames, tuple(self._say), tuple(self._effects))

    def _ctx(self, run_id: str = "") -> DialogContext:
        return DialogContext(self._stack[-1][1], self.conversation_id, run_id)

    def _apply(self, step: Step) -> None:
        while True:
            self._say.extend(step.say)
            self._effects.extend(step.effects)
            if step.status is DialogStatus.WAITING:
                return
            self._stack.pop()
            if not self._stack:
                # The conversation always has a dialog listening: the root starts over.
                self._restarts += 1
                if self._restarts > _MAX_RESTARTS:
                    raise DialogLoop(f"dialog {self.root!r} keeps ending as soon as it begins")
                self._stack.append((self.root, {}))
                step = self.dialogs[self.root].begin(self._ctx())
                continue
            dialog_id, _ = self._stack[-1]
            step = self.dialogs[dialog_id].resume(self._ctx(), step.result)
