"""The survey: the dialog that interrupts a conversation, and the store of its answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import TableClient, UpdateMode

from shared_code.conversation.engine import DialogContext, RecordAnswer, Step
from shared_code.plumbing.errors import ConfigError
from shared_code.plumbing.limits import MAX_ANSWER_CHARS, clip
from shared_code.protocol.content import best_locale
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import ensure_table

PROMPT = 'Hello, I\'m the survey dialog. I\'m interrupting your conversation to ask you a question. Type "done" to resume'
BACK = "Great, back to the original conversation"
THANKS = "Thanks for your answers!"
DONE = "done"
DEFAULT_LOCALE = "en"  # the seed's texts above are English


def survey_dialog(prompts_json: str, questions: tuple[str, ...], locale: str | None) -> SurveyDialog:
    """The survey in a conversation's language, from SurveyPromptsJson:
    {"fr": {"prompt": ..., "back": ..., "thanks": ..., "questions": [...]}, ...}: exact locale, then
    language, then English (the seed's texts and SurveyQuestions). A locale may name only some of them."""
    if not prompts_json.strip():
        return SurveyDialog(questions=questions)
    try:
        given = json.loads(prompts_json)
    except ValueError:
        raise ConfigError("setting SurveyPromptsJson is not JSON") from None
    if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
        raise ConfigError('setting SurveyPromptsJson must map locales to {"prompt": ..., "back": ...}')
    for key, texts in given.items():
        asked = texts.get("questions")
        if asked is not None and (not isinstance(asked, list) or not all(isinstance(q, str) and q for q in asked)):
            raise ConfigError(f"setting SurveyPromptsJson: {key}.questions must be a list of texts")
    english = {"prompt": PROMPT, "back": BACK, "thanks": THANKS, "questions": list(questions)}
    by_locale = {DEFAULT_LOCALE: english}
    for key, texts in given.items():
        by_locale[key] = {**english, **{k: v for k, v in texts.items() if v}}
    chosen = by_locale[best_locale(by_locale, locale, DEFAULT_LOCALE)]
    return SurveyDialog(questions=tuple(chosen["questions"]), prompt=str(chosen["prompt"]),
                        back=str(chosen["back"]), thanks=str(chosen["thanks"]))


@dataclass(frozen=True, slots=True)
class SurveyDialog:
    """With no questions, the seed's survey: the prompt to anything but "done".
    With questions, asks them in order and records each answer; "done" ends it at any point."""

    questions: tuple[str, ...] = ()
    prompt: str = PROMPT  # in the conversation's language (survey_dialog)
    back: str = BACK
    thanks: str = THANKS

    def begin(self, ctx: DialogContext) -> Step:
        ctx.state.update(run=ctx.run_id, index=0, seen=0)
        if self.questions:
            return Step.wait(self.prompt, self.questions[0])
        return Step.wait(self.prompt)

    def continue_(self, ctx: DialogContext, text: str) -> Step:
        ctx.state["seen"] = _count(ctx.state, "seen") + 1
        if text.strip().lower() == DONE:
            return Step.end(self.back, result={"completed": False})
        if not self.questions:
            return Step.wait(self.prompt)
        index = _count(ctx.state, "index")
        if index >= len(self.questions):  # the questions changed under a running survey
            return Step.end(self.thanks, self.back, result={"completed": True})
        # Clipped like every answer the bot keeps (limits.clip): a row holds it whatever the user typed.
        answer = RecordAnswer(str(ctx.state.get("run", "")), index, self.questions[index],
                              clip(text.strip(), MAX_ANSWER_CHARS))
        ctx.state["index"] = index + 1
        if index + 1 < len(self.questions):
            return Step.wait(self.questions[index + 1], effects=(answer,))
        return Step.end(self.thanks, self.back, result={"completed": True}, effects=(answer,))

    def resume(self, ctx: DialogContext, result: Any) -> Step:
        # Nothing is ever begun on top of a survey; should it happen, ask again what is pending.
        index = _count(ctx.state, "index")
        if self.questions and index < len(self.questions):
            return Step.wait(self.questions[index])
        return Step.wait(self.prompt)


def _count(state: dict[str, Any], key: str) -> int:
    # A stored state is read, not trusted: a position that is not a number starts again.
    value = state.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass(frozen=True, slots=True)
class SurveyAnswer:
    conversation_id: str
    run_id: str
    index: int
    question: str
    answer: str
    answered_at: datetime | None = None
    # Who answered: in a group chat or channel the survey is the conversation's, and anyone may answer.
    user_id: str = ""


class SurveyAnswerStore:
    """One entity per (conversation, survey run, question): writing an answer again overwrites it."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def record(self, answer: SurveyAnswer) -> None:
        ensure_table(self._table)
        self._table.upsert_entity(
            {
                "PartitionKey": encode_key(answer.conversation_id),
                "RowKey": f"{encode_key(answer.run_id)}.{answer.index:04d}",
                "ConversationId": answer.conversation_id,
                "RunId": answer.run_id,
                "QuestionIndex": answer.index,
                "Question": answer.question,
                "Answer": answer.answer,
                "AnsweredAt": answer.answered_at or datetime.now(UTC),
                "UserId": answer.user_id,
            },
            mode=UpdateMode.REPLACE,
        )

    def answers(self, conversation_id: str) -> list[SurveyAnswer]:
        """A conversation's answers, by run then question."""
        ensure_table(self._table)
        found = self._table.query_entities("PartitionKey eq @partition", parameters={"partition": encode_key(conversation_id)})
        answers = [
            SurveyAnswer(
                conversation_id=e["ConversationId"],
                run_id=e["RunId"],
                index=int(e["QuestionIndex"]),
                question=e["Question"],
                answer=e["Answer"],
                answered_at=e.get("AnsweredAt"),
                user_id=e.get("UserId") or "",
            )
            for e in found
        ]
        return sorted(answers, key=lambda a: (a.run_id, a.index))
