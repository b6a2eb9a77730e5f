"""The survey: the dialog that interrupts a conversation, and the store of its answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import TableClient, UpdateMode

from shared_code.content import Content, LocalizedContent
from shared_code.dialogs_engine import DialogContext, RecordAnswer, Step
from shared_code.errors import ConfigError
from shared_code.keys import encode_key
from shared_code.tables import ensure_table

PROMPT = 'Hello, I\'m the survey dialog. I\'m interrupting your conversation to ask you a question. Type "done" to resume'
BACK = "Great, back to the original conversation"
THANKS = "Thanks for your answers!"
DONE = "done"
DEFAULT_LOCALE = "en"  # the seed's texts above are English


def survey_texts(prompts_json: str, locale: str | None) -> tuple[str, str]:
    """(prompt, back) for a conversation's locale from SurveyPromptsJson
    ({"fr": {"prompt": ..., "back": ...}, ...}): exact locale, then language, then English."""
    if not prompts_json.strip():
        return PROMPT, BACK
    try:
        given = json.loads(prompts_json)
    except ValueError:
        raise ConfigError("setting SurveyPromptsJson is not JSON") from None
    if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
        raise ConfigError('setting SurveyPromptsJson must map locales to {"prompt": ..., "back": ...}')
    prompts = {DEFAULT_LOCALE: Content(PROMPT)}
    backs = {DEFAULT_LOCALE: Content(BACK)}
    for key, texts in given.items():
        # A locale that names only one of the two texts keeps the English other one.
        prompts[key] = Content(str(texts.get("prompt") or PROMPT))
        backs[key] = Content(str(texts.get("back") or BACK))
    return (LocalizedContent(prompts, DEFAULT_LOCALE).for_locale(locale).text,
            LocalizedContent(backs, DEFAULT_LOCALE).for_locale(locale).text)


@dataclass(frozen=True, slots=True)
class SurveyDialog:
    """With no questions, the seed's survey: the prompt to anything but "done".
    With questions, asks them in order and records each answer; "done" ends it at any point."""

    questions: tuple[str, ...] = ()
    prompt: str = PROMPT  # in the conversation's language (survey_texts)
    back: str = BACK

    def begin(self, ctx: DialogContext) -> Step:
        ctx.state.update(run=ctx.run_id, index=0, seen=0)
        if self.questions:
            return Step.wait(self.prompt, self.questions[0])
        return Step.wait(self.prompt)

    def continue_(self, ctx: DialogContext, text: str) -> Step:
        ctx.state["seen"] = int(ctx.state.get("seen", 0)) + 1
        if text.strip().lower() == DONE:
            return Step.end(self.back, result={"completed": False})
        if not self.questions:
            return Step.wait(self.prompt)
        index = int(ctx.state.get("index", 0))
        if index >= len(self.questions):  # the questions changed under a running survey
            return Step.end(THANKS, self.back, result={"completed": True})
        answer = RecordAnswer(str(ctx.state.get("run", "")), index, self.questions[index], text.strip())
        ctx.state["index"] = index + 1
        if index + 1 < len(self.questions):
            return Step.wait(self.questions[index + 1], effects=(answer,))
        return Step.end(THANKS, self.back, result={"completed": True}, effects=(answer,))

    def resume(self, ctx: DialogContext, result: Any) -> Step:
        # Nothing is ever begun on top of a survey; should it happen, ask again what is pending.
        index = int(ctx.state.get("index", 0))
        if self.questions and index < len(self.questions):
            return Step.wait(self.questions[index])
        return Step.wait(self.prompt)


@dataclass(frozen=True, slots=True)
class SurveyAnswer:
    conversation_id: str
    run_id: str
    index: int
    question: str
    answer: str
    answered_at: datetime | None = None


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
            )
            for e in found
        ]
        return sorted(answers, key=lambda a: (a.run_id, a.index))
