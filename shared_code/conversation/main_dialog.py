"""The main dialog: the bot's everyday conversation (name, favourite colour, then chat), the one a survey interrupts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared_code.conversation.engine import DialogContext, ScheduleDialog, Step
from shared_code.plumbing.limits import MAX_ANSWER_CHARS, clip

ASK_NAME = "What's your name?"
INTERRUPT_COMMANDS = frozenset({"survey", "interrupt me"})
INTERRUPT_NOTICE = "Hey there, I'm going to interrupt our conversation and start a survey in five seconds..."
SURVEY_DELAY_SECONDS = 5


class MainStep(StrEnum):
    NAME = "name"  # waiting for the user's name
    COLOUR = "colour"  # waiting for their favourite colour
    CHAT = "chat"  # both known: chatting


@dataclass(frozen=True, slots=True)
class MainDialog:
    public_base_url: str = "http://localhost:7071"
    survey_dialog_id: str = "survey"

    def begin(self, ctx: DialogContext) -> Step:
        ctx.state.clear()
        ctx.state["step"] = MainStep.NAME.value
        return Step.wait(ASK_NAME)

    def continue_(self, ctx: DialogContext, text: str) -> Step:
        said = text.strip()
        if said.lower() in INTERRUPT_COMMANDS:
            return Step.wait(
                INTERRUPT_NOTICE,
                f"You can also make me send a message by accessing: {self.public_base_url.rstrip('/')}/api/notify",
                effects=(ScheduleDialog(self.survey_dialog_id, SURVEY_DELAY_SECONDS),),
            )
        step = _step(ctx.state)
        if not said:
            return Step.wait(self._pending_question(ctx.state))
        # What the bot keeps or repeats of what the user typed is clipped: the state stays within its
        # row, and a reply within the channel's message size, whatever the user sends.
        said = clip(said, MAX_ANSWER_CHARS)
        if step is MainStep.NAME:
            ctx.state.update(step=MainStep.COLOUR.value, name=said)
            return Step.wait(f"Nice to meet you, {said}! What's your favourite colour?")
        if step is MainStep.COLOUR:
            ctx.state.update(step=MainStep.CHAT.value, colour=said, chats=0)
            name = _name(ctx.state, "friend")
            return Step.wait(
                f"{said}, a fine colour, {name}. I'll remember that. Tell me anything, "
                'or say "survey" and I\'ll interrupt you with one.'
            )
        ctx.state["chats"] = _count(ctx.state, "chats") + 1
        return Step.wait(f"You said: {said}")

    def resume(self, ctx: DialogContext, result: Any) -> Step:
        # Back from a survey (or any dialog above): ask again what was pending.
        return Step.wait(self._pending_question(ctx.state))

    def _pending_question(self, state: dict[str, Any]) -> str:
        step = _step(state)
        name = _name(state, "")
        if step is MainStep.NAME:
            return ASK_NAME
        if step is MainStep.COLOUR:
            return f"So, {name}, what's your favourite colour?"
        return f"Where were we, {name}? Tell me anything."


def _step(state: dict[str, Any]) -> MainStep:
    try:
        return MainStep(state.get("step", MainStep.NAME.value))
    except ValueError:
        return MainStep.NAME


def _name(state: dict[str, Any], default: str) -> str:
    # State saved before names were clipped may hold a longer one.
    name = state.get("name", default)
    return clip(name if isinstance(name, str) else default, MAX_ANSWER_CHARS)


def _count(state: dict[str, Any], key: str) -> int:
    # A stored state is read, not trusted: a count that is not a number starts again.
    value = state.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
