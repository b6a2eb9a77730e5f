"""Dialogs: the bot's dialog stack per conversation, run for a user's message or started proactively.

Each entry point reads the conversation's stack, computes the turn (dialogs_engine),
saves the stack with the ETag it read, and only then carries out the turn's effects
and hands back (or sends) what to say. A save that loses a race (412/409) re-reads
and re-runs the turn, so a user's message and a proactive start that race on one
conversation both take effect, and nothing is said twice.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared_code.conversation.engine import Dialog, Effect, RecordAnswer, ScheduleDialog, StackRun, TurnOutput
from shared_code.conversation.main_dialog import MainDialog
from shared_code.conversation.proactive import send_proactive_message
from shared_code.conversation.state import ConversationState, Frame, StateConflict, StateTooLarge, remembered
from shared_code.conversation.survey import SurveyAnswer, survey_dialog
from shared_code.plumbing.errors import AppError, BadInput, RecipientGone, UntrustedServiceUrl, Upstream
from shared_code.plumbing.settings import Settings
from shared_code.protocol.activity import ConversationReference
from shared_code.storage import queues
from shared_code.storage.addresses import Address

if TYPE_CHECKING:
    from shared_code.conversation.ports import ConversationServices

log = logging.getLogger(__name__)

MAIN = "main"
SURVEY = "survey"
# Dialogs other services may start in a conversation (a queue job or /api/notify).
PROACTIVE_DIALOGS = frozenset({SURVEY})
RESTARTED = "Sorry, I lost track of where we were, so let's start over."
MAX_ATTEMPTS = 12


def dialogs_for(settings: Settings, locale: str | None = None) -> dict[str, Dialog]:
    return {
        MAIN: MainDialog(public_base_url=settings.public_base_url, survey_dialog_id=SURVEY),
        SURVEY: survey_dialog(settings.survey_prompts_json, settings.survey_questions, locale),
    }


@dataclass(frozen=True, slots=True)
class _Decision:
    output: TurnOutput
    job_ids: tuple[str, ...] | None = None  # None: unchanged


def handle_message(
    reference: ConversationReference, text: str, services: ConversationServices, *, activity_id: str = ""
) -> tuple[str, ...]:
    """Run the user's message through their conversation's stack; returns what to reply, in order.

    When this returns, the stack is saved and the turn's other effects are done: the caller
    only sends the replies. An empty stack (a new conversation) begins the main dialog.
    A channel that posts the same activity again (it retries when our answer was slow) gets
    nothing back the second time: the activity's id is remembered with the stack, like a job's.
    """
    dialogs = dialogs_for(services.settings, reference.locale)
    conversation_id = reference.conversation.id
    seen = f"activity:{activity_id}" if activity_id else ""

    def decide(current: ConversationState) -> _Decision | None:
        if seen and current.remembers(seen):
            log.info("activity %s was already handled in this conversation", activity_id)
            return None
        frames, restarted = _usable_frames(current, dialogs)
        run = StackRun.over(frames, dialogs, MAIN, conversation_id)
        if restarted:
            run.say(RESTARTED)
        run.continue_(text)
        return _Decision(run.output(), job_ids=current.job_ids + (seen,) if seen else None)

    decision = _run_turn(reference.channel_id, conversation_id, decide, services, user_id=reference.user.id)
    return decision.output.say if decision is not None else ()


def begin_dialog(address: Address, dialog_id: str, job_id: str, services: ConversationServices) -> bool:
    """Start `dialog_id` on top of the conversation's stack and send its first prompt proactively.

    False when nothing was started: the job `job_id` was already applied (a redelivery),
    or the dialog is already on the stack. Unknown dialog: BadInput; inactive address:
    RecipientGone (both final for a queue job).
    """
    if dialog_id not in PROACTIVE_DIALOGS:
        raise BadInput(f"unknown dialog {dialog_id!r}; known: {', '.join(sorted(PROACTIVE_DIALOGS))}")
    if not address.active:
        raise RecipientGone(f"the address is inactive ({address.inactive_reason or 'no reason recorded'})",
                            code="address_inactive")
    _check_token_may_go(address, services)
    dialogs = dialogs_for(services.settings, address.reference.locale)
    conversation_id = address.conversation_id

    def decide(current: ConversationState) -> _Decision | None:
        if current.remembers(job_id):
            log.info("dialog job %s was already applied to this conversation", job_id)
            return None
        frames, _ = _usable_frames(current, dialogs)
        if any(frame.dialog_id == dialog_id for frame in frames):
            log.info("conversation is already in a %s; job %s starts nothing", dialog_id, job_id)
            return None
        run = StackRun.over(frames, dialogs, MAIN, conversation_id)
        if run.depth == 0:
            # Someone who never talked (or whose state was lost) still gets a conversation to return to.
            run.push(MAIN)
        run.begin(dialog_id, run_id=job_id)
        return _Decision(run.output(), job_ids=current.job_ids + (job_id,))

    decision = _run_turn(address.channel_id, conversation_id, decide, services)
    if decision is None:
        return False
    try:
        for text in decision.output.say:
            send_proactive_message(address, services, text=text)
    except AppError:
        # The user never saw the prompt: take the dialog back off the stack and forget the job,
        # so the retry the caller makes (a queue retry, a re-queued page) starts it again.
        _undo_begin(address, dialog_id, job_id, services)
        raise
    return True


def _check_token_may_go(address: Address, services: ConversationServices) -> None:
    """UntrustedServiceUrl before the stack changes: the prompt could never be sent there (the connector
    refuses it too), so the job is refused without a write to take back."""
    if services.settings.local_mode or address.service_url_trusted:
        return
    if not services.credentials.is_trusted(address.reference.service_url):
        raise UntrustedServiceUrl(
            f"refusing to start a dialog at {address.reference.service_url!r}: the serviceUrl did not come from an "
            "authenticated activity and is not in TrustedServiceUrls")


def _undo_begin(address: Address, dialog_id: str, job_id: str, services: ConversationServices) -> None:
    def decide(current: ConversationState) -> _Decision | None:
        frames = current.frames
        if not frames or frames[-1].dialog_id != dialog_id or frames[-1].state.get("run") != job_id:
            return None  # the user has moved on (or another start won): leave it as it is
        return _Decision(TurnOutput(frames[:-1], (), ()),
                         job_ids=tuple(j for j in current.job_ids if j != remembered(job_id)))

    try:
        _run_turn(address.channel_id, address.conversation_id, decide, services)
    except AppError:
        log.warning("could not take back dialog %s of job %s after its prompt failed", dialog_id, job_id)


def _usable_frames(current: ConversationState, dialogs: Mapping[str, Dialog]) -> tuple[tuple[Frame, ...], bool]:
    """The stack as read, or empty and True (restart at the main dialog) when it cannot be used."""
    problem = current.problem
    if not problem:
        unknown = sorted({f.dialog_id for f in current.frames if f.dialog_id not in dialogs})
        if unknown:
            problem = f"unknown dialog id(s) {', '.join(map(repr, unknown))} on the stack"
        elif current.frames and current.frames[0].dialog_id != MAIN:
            problem = "the bottom of the stack is not the main dialog"
    if problem:
        log.warning("dialog state of a conversation is unusable (%s): restarting at the main dialog", problem)
        return (), True
    return current.frames, False


def _run_turn(
    channel_id: str,
    conversation_id: str,
    decide: Callable[[ConversationState], _Decision | None],
    services: ConversationServices,
    *,
    user_id: str = "",
) -> _Decision | None:
    """Read, decide, save with the ETag; on a conflict read and decide again (bounded).

    A stack that would not fit its row is never left unwritable: the turn is decided again over
    a restarted stack (the main dialog, with a warning), as for state that cannot be read.
    """
    store = services.dialog_state
    too_large = ""
    for attempt in range(MAX_ATTEMPTS):
        current = store.load(channel_id, conversation_id)
        if too_large:
            current = current.unusable(too_large)
        decision = decide(current)
        if decision is None:
            return None
        try:
            store.save(current.with_stack(decision.output.frames, decision.job_ids))
        except StateTooLarge as error:
            if too_large:  # even a restarted stack does not fit: a dialog bug, not the user's input
                raise
            too_large = str(error)
            continue
        except StateConflict as conflict:
            log.info("dialog state changed under turn (%s), re-running it (attempt %d)", conflict, attempt + 1)
            # Jitter: two writers that collided must not collide again in lockstep.
            time.sleep(random.uniform(0.005, 0.02 * (attempt + 1)))
            continue
        _carry_out(decision.output.effects, channel_id, conversation_id, services, user_id=user_id)
        return decision
    raise Upstream("the conversation's state kept changing; try again", code="state_conflict", transient=True)


def _carry_out(
    effects: tuple[Effect, ...], channel_id: str, conversation_id: str, services: ConversationServices, *, user_id: str = ""
) -> None:
    # Storage effects run before anything is said: what the bot announces (a survey in
    # five seconds) is already under way when the user reads it.
    for effect in effects:
        if isinstance(effect, RecordAnswer):
            services.survey_answers.record(
                SurveyAnswer(conversation_id, effect.run_id, effect.index, effect.question, effect.answer,
                             user_id=user_id)
            )
        elif isinstance(effect, ScheduleDialog):
            # A v1 dialog job, as notifications.jobs reads it (its tests check the two agree).
            job: dict[str, Any] = {
                "v": 1,
                "kind": "dialog",
                "dialog": effect.dialog_id,
                "id": uuid.uuid4().hex,
                "to": {"conversation": conversation_id},
            }
            queues.send(services.queue(), job, effect.delay_seconds)
