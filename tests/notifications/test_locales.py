"""Per-locale content: each recipient gets the text (or card) for its address's locale; survey prompts too."""

from __future__ import annotations

import pytest

import MessagesFunction
from shared_code.app import services
from shared_code.conversation.survey import PROMPT
from tests.support.builders import http_request, message
from tests.support.notify_calls import CARD, call, drain, seed, status

LOCALES = {"c-en": "en-US", "c-fr": "fr-FR", "c-ca": "fr-CA", "c-de": "de-DE"}


def broadcast(app_env, connector, request: dict) -> None:
    seed(connector, LOCALES)
    assert call("POST", request).status_code == 202
    drain(app_env, lambda: status(request["id"])["state"] == "done")


def test_each_recipient_gets_the_text_for_its_locale(app_env, connector):
    broadcast(app_env, connector, {"to": "all", "id": "hello", "text": {"en": "Hello", "fr": "Bonjour"},
                                   "defaultLocale": "en"})

    assert {cid: connector.texts(cid) for cid in ("c-en", "c-fr", "c-ca")} == {
        "c-en": ["Hello"], "c-fr": ["Bonjour"], "c-ca": ["Bonjour"]}


def test_a_recipient_whose_locale_matches_none_gets_the_default(app_env, connector):
    broadcast(app_env, connector, {"to": "all", "id": "hello", "text": {"en": "Hello", "fr": "Bonjour"},
                                   "defaultLocale": "fr"})

    assert connector.texts("c-de") == ["Bonjour"]


def test_an_exact_locale_wins_over_its_language(app_env, connector):
    broadcast(app_env, connector, {"to": "all", "id": "hello", "defaultLocale": "en",
                                   "text": {"en": "Hello", "fr": "Bonjour", "fr-CA": "Allo"}})

    assert (connector.texts("c-fr"), connector.texts("c-ca")) == (["Bonjour"], ["Allo"])


def test_one_conversation_gets_the_card_for_its_locale(app_env, connector):
    seed(connector, LOCALES)
    french = {"contentType": CARD["contentType"],
              "content": {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "Salut"}]}}

    response = call("POST", {"to": {"conversation": "c-ca"}, "attachments": {"en": [CARD], "fr": [french]},
                             "defaultLocale": "en"})

    assert response.status_code == 200
    assert connector.activities("c-ca")[0]["attachments"] == [french]


def test_the_survey_prompt_is_in_the_conversations_language(app_env, connector):
    app_env.set(SurveyPromptsJson='{"fr": {"prompt": "Bonjour, une question ?", "back": "Retour"}}')
    seed(connector, LOCALES)

    response = call("POST", {"to": {"conversation": "c-ca"}, "dialog": "survey"})

    assert response.status_code == 200
    assert connector.texts("c-ca")[0] == "Bonjour, une question ?"


def test_the_survey_prompt_stays_english_where_no_language_is_configured(app_env, connector):
    app_env.set(SurveyPromptsJson='{"fr": {"prompt": "Bonjour, une question ?", "back": "Retour"}}')
    seed(connector, LOCALES)

    call("POST", {"to": {"conversation": "c-de"}, "dialog": "survey"})

    assert connector.texts("c-de")[0] == PROMPT


def test_the_survey_questions_and_thanks_are_in_the_conversations_language(app_env, connector):
    app_env.set(SurveyQuestions="How are you?",
                SurveyPromptsJson='{"fr": {"prompt": "Une question :", "back": "Retour", "thanks": "Merci !",'
                                  ' "questions": ["Comment allez-vous ?"]}}')
    seed(connector, LOCALES)

    call("POST", {"to": {"conversation": "c-ca"}, "dialog": "survey"})
    call("POST", {"to": {"conversation": "c-de"}, "dialog": "survey"})
    MessagesFunction.main(http_request("POST", "http://x/api/messages",
                                       message(connector.url, "Bien", conversation_id="c-ca", locale="fr-CA")))

    assert connector.texts("c-ca")[:4] == ["Une question :", "Comment allez-vous ?", "Merci !", "Retour"]
    assert connector.texts("c-de")[:2] == [PROMPT, "How are you?"]


def test_a_survey_prompts_setting_with_bad_questions_is_a_config_error_naming_it(app_env):
    from shared_code.conversation.dialogs import dialogs_for
    from shared_code.plumbing.errors import ConfigError

    app_env.set(SurveyPromptsJson='{"fr": {"questions": "Comment ?"}}')

    with pytest.raises(ConfigError, match="SurveyPromptsJson"):
        dialogs_for(services.get().settings, "fr-FR")
