"""The dialog engine and the bot's dialogs as plain objects: no storage, no HTTP."""

from __future__ import annotations

import pytest

from shared_code.conversation.engine import DialogContext, DialogLoop, RecordAnswer, ScheduleDialog, StackRun, Step
from shared_code.conversation.main_dialog import ASK_NAME, INTERRUPT_NOTICE, MainDialog
from shared_code.conversation.state import Frame, decode_stack, encode_stack
from shared_code.conversation.survey import BACK, PROMPT, THANKS, SurveyDialog

DIALOGS = {"main": MainDialog(public_base_url="https://bot.example"), "survey": SurveyDialog()}


def turn(frames: tuple[Frame, ...], text: str, dialogs=DIALOGS):
    run = StackRun.over(frames, dialogs, "main", "conv-1")
    run.continue_(text)
    return run.output()


def test_empty_stack_begins_the_main_dialog_with_its_first_question():
    out = turn((), "hi")

    assert out.say == (ASK_NAME,)
    assert out.frames == (Frame("main", {"step": "name"}),)


def test_main_dialog_asks_name_then_colour_then_uses_both():
    first = turn((), "hi")
    second = turn(first.frames, " Ada ")
    third = turn(second.frames, "green")

    assert second.say == ("Nice to meet you, Ada! What's your favourite colour?",)
    assert third.say[0].startswith("green, a fine colour, Ada.")
    assert third.frames[0].state == {"step": "chat", "name": "Ada", "colour": "green", "chats": 0}


@pytest.mark.parametrize("command", ["survey", "SURVEY", "  Interrupt Me "])
def test_interrupt_command_announces_and_schedules_a_survey_in_five_seconds(command):
    out = turn((Frame("main", {"step": "colour", "name": "Ada"}),), command)

    assert out.say == (INTERRUPT_NOTICE, "You can also make me send a message by accessing: https://bot.example/api/notify")
    assert out.effects == (ScheduleDialog("survey", 5),)
    assert out.frames == (Frame("main", {"step": "colour", "name": "Ada"}),)


def test_survey_on_top_gets_the_message_and_ends_on_done_with_the_pending_question_again():
    frames = (Frame("main", {"step": "colour", "name": "Ada"}), Frame("survey", {"run": "r1", "index": 0, "seen": 0}))

    busy = turn(frames, "what is this?")
    done = turn(busy.frames, "  DoNe ")

    assert busy.say == (PROMPT,)
    assert done.say == (BACK, "So, Ada, what's your favourite colour?")
    assert done.frames == (Frame("main", {"step": "colour", "name": "Ada"}),)


def test_turn_does_not_change_the_frames_it_was_given():
    frames = (Frame("main", {"step": "name"}),)

    turn(frames, "Ada")

    assert frames == (Frame("main", {"step": "name"}),)


def test_survey_with_questions_asks_them_in_order_records_answers_and_thanks():
    dialogs = {"main": MainDialog(), "survey": SurveyDialog(("How are you?", "Rate us 1-5"))}
    run = StackRun.over((Frame("main", {"step": "name"}),), dialogs, "main")
    run.begin("survey", run_id="job-1")
    begun = run.output()

    first = turn(begun.frames, "fine", dialogs)
    last = turn(first.frames, "5", dialogs)

    assert begun.say == (PROMPT, "How are you?")
    assert first.say == ("Rate us 1-5",)
    assert first.effects == (RecordAnswer("job-1", 0, "How are you?", "fine"),)
    assert last.say == (THANKS, BACK, ASK_NAME)
    assert last.effects == (RecordAnswer("job-1", 1, "Rate us 1-5", "5"),)
    assert [f.dialog_id for f in last.frames] == ["main"]


def test_a_root_that_ends_at_once_is_a_dialog_loop_not_a_hang():
    class Ends:
        def begin(self, ctx: DialogContext) -> Step:
            return Step.end("bye")

        def continue_(self, ctx: DialogContext, text: str) -> Step:
            return Step.end("bye")

        def resume(self, ctx: DialogContext, result: object) -> Step:
            return Step.end("bye")

    with pytest.raises(DialogLoop):
        turn((), "hi", {"main": Ends()})


def test_stack_json_round_trips():
    frames = (Frame("main", {"step": "chat", "name": "Zoë / #1?"}), Frame("survey", {"run": "r", "index": 1}))

    assert decode_stack(encode_stack(frames, ("job-1",))) == (frames, ("job-1",))


@pytest.mark.parametrize("raw", [None, "{oops", "[]", '{"v": 2, "stack": []}', '{"v": 1, "stack": [{"dialog": 3}]}',
                                 '{"v": 1, "stack": {}, "jobs": []}'])
def test_unreadable_stack_json_is_a_value_error(raw):
    with pytest.raises(ValueError):
        decode_stack(raw)
