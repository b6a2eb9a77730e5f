"""The Bot Connector REST client: send to a conversation, reply, create a conversation.

The one module that owns outbound HTTP to channels. Transport errors and the
connector's error answers become the app's error types here and nowhere else.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import requests

from shared_code.plumbing.errors import AppError, AppRejected, BadInput, RecipientGone, Throttled, Upstream
from shared_code.plumbing.http_session import pooled_session
from shared_code.protocol.activity import ConversationReference
from shared_code.protocol.conversation_limits import ConversationLimiter

log = logging.getLogger(__name__)

TIMEOUT = (3.05, 20.0)  # (connect, read) seconds
MAX_RETRY_AFTER = 30.0  # longer waits are the caller's (a delayed queue message), not a sleeping thread

# 403/404 codes that mean this one recipient is gone (PROTOCOL.md: stop, do not retry, deactivate).
GONE_CODES = {"BotNotInConversationRoster", "ConversationBlockedByUser", "ConversationNotFound", "MessageWritesBlocked"}
# Codes that mean the whole bot is refused: no recipient will get anything.
APP_REJECTED_CODES = {"BotDisabledByAdmin", "BotNotRegistered"}


# Teams' page sizes for pagedmembers: smaller asks count as 50, larger as 500.
MIN_PAGE_SIZE, MAX_PAGE_SIZE = 50, 500


@dataclass(frozen=True, slots=True)
class RosterMember:
    """A member of a team, as pagedmembers lists them."""

    id: str
    name: str = ""
    aad_object_id: str = ""
    email: str = ""
    user_principal_name: str = ""
    tenant_id: str = ""
    user_role: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RosterMember:
        def text(*keys: str) -> str:
            return next((data[k] for k in keys if isinstance(data.get(k), str) and data[k]), "")

        return cls(id=data["id"], name=text("name"), aad_object_id=text("aadObjectId", "objectId"),
                   email=text("email"), user_principal_name=text("userPrincipalName"), tenant_id=text("tenantId"),
                   user_role=text("userRole"))


@dataclass(frozen=True, slots=True)
class MembersPage:
    members: tuple[RosterMember, ...]
    continuation: str | None  # None: this was the last page


class Authorization(Protocol):
    def authorization(self, service_url: str, *, trusted: bool) -> str | None: ...


class NoCredentials:
    """Local mode (no MicrosoftAppId): the channel gets no token."""

    def authorization(self, service_url: str, *, trusted: bool) -> str | None:
        return None

    def invalidate(self) -> None:
        pass


class ConnectorClient:
    def __init__(
        self,
        credentials: Authorization,
        session: requests.Session | None = None,
        *,
        timeout: tuple[float, float] = TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        conversations: ConversationLimiter | None = None,
    ) -> None:
        self._credentials = credentials
        self._session = session or pooled_session(16)
        self._timeout = timeout
        self._sleep = sleep
        # Every message to a conversation (a reply, a dialog's prompt, a broadcast's) waits for the
        # conversation's own limits here, so no path can burst past them.
        self._conversations = conversations

    def send_to_conversation(
        self, reference: ConversationReference, activity: dict[str, Any], *, trusted: bool, retries: int = 0
    ) -> str:
        """POST the activity to the conversation; returns the channel's activity id."""
        url = f"{_base(reference.service_url)}/v3/conversations/{quote(reference.conversation.id, safe='')}/activities"
        return self._post(reference.service_url, url, activity, trusted=trusted, retries=retries,
                          conversation=reference).get("id", "")

    def reply_to_activity(
        self,
        reference: ConversationReference,
        reply_to_id: str,
        activity: dict[str, Any],
        *,
        trusted: bool,
        retries: int = 0,
    ) -> str:
        url = (
            f"{_base(reference.service_url)}/v3/conversations/{quote(reference.conversation.id, safe='')}"
            f"/activities/{quote(reply_to_id, safe='')}"
        )
        body = dict(activity, replyToId=reply_to_id)
        return self._post(reference.service_url, url, body, trusted=trusted, retries=retries,
                          conversation=reference).get("id", "")

    def update_activity(
        self, reference: ConversationReference, activity_id: str, activity: dict[str, Any], *, trusted: bool,
        retries: int = 0,
    ) -> str:
        """PUT /v3/conversations/{id}/activities/{activityId}: replace a message the bot sent, in place.
        ActivityNotFound when the channel no longer has it (deleted, or never ours)."""
        body = dict(activity, id=activity_id)
        answer = self._call("PUT", reference, _activity_url(reference, activity_id), body,
                            trusted=trusted, retries=retries)
        return str(answer.get("id") or activity_id)

    def delete_activity(
        self, reference: ConversationReference, activity_id: str, *, trusted: bool, retries: int = 0
    ) -> None:
        """DELETE /v3/conversations/{id}/activities/{activityId}: withdraw a message the bot sent."""
        self._call("DELETE", reference, _activity_url(reference, activity_id), None,
                   trusted=trusted, retries=retries)

    def create_conversation(
        self, service_url: str, parameters: dict[str, Any], *, trusted: bool, retries: int = 0
    ) -> dict[str, Any]:
        """POST /v3/conversations: returns {id, activityId, serviceUrl}."""
        return self._post(service_url, f"{_base(service_url)}/v3/conversations", parameters, trusted=trusted, retries=retries)

    def paged_members(
        self,
        service_url: str,
        team_id: str,
        page_size: int = MAX_PAGE_SIZE,
        continuation: str | None = None,
        *,
        trusted: bool,
        retries: int = 0,
    ) -> MembersPage:
        """GET /v3/conversations/{teamId}/pagedmembers: one page of a team's roster and the token of
        the next (None after the last). Teams counts a pageSize below 50 as 50 and above 500 as 500."""
        params: dict[str, str] = {"pageSize": str(min(MAX_PAGE_SIZE, max(MIN_PAGE_SIZE, int(page_size))))}
        if continuation:
            params["continuationToken"] = continuation
        url = f"{_base(service_url)}/v3/conversations/{quote(team_id, safe='')}/pagedmembers"
        data = self._get(service_url, url, params, trusted=trusted, retries=retries)
        members = data.get("members")
        token = data.get("continuationToken")
        return MembersPage(
            members=tuple(RosterMember.from_json(m) for m in members if isinstance(m, dict) and m.get("id"))
            if isinstance(members, list) else (),
            continuation=token if isinstance(token, str) and token else None,
        )

    def create_personal_conversation(
        self, service_url: str, bot_id: str, user_id: str, tenant_id: str, *, trusted: bool, retries: int = 0
    ) -> str:
        """POST /v3/conversations for a 1:1 with `user_id`: Teams needs the tenant, and answers the same
        conversation when one exists already. Returns the conversation id."""
        if not tenant_id:
            raise BadInput("a personal conversation in Teams needs the tenant id")
        parameters = {
            "bot": {"id": bot_id},
            "members": [{"id": user_id}],
            "channelData": {"tenant": {"id": tenant_id}},
            "isGroup": False,
        }
        created = self.create_conversation(service_url, parameters, trusted=trusted, retries=retries)
        conversation_id = created.get("id")
        if not isinstance(conversation_id, str) or not conversation_id:
            raise Upstream("the channel created a conversation but returned no id", code="no_conversation_id",
                           transient=False)
        return conversation_id

    def _get(self, service_url: str, url: str, params: dict[str, str], *, trusted: bool, retries: int) -> dict[str, Any]:
        """GET (a read is always safe to repeat)."""
        return self._request("GET", service_url, url, params=params, trusted=trusted, retries=retries)

    def _post(self, service_url: str, url: str, body: dict[str, Any], *, trusted: bool, retries: int,
              conversation: ConversationReference | None = None) -> dict[str, Any]:
        return self._request("POST", service_url, url, body=body, trusted=trusted, retries=retries,
                             conversation=conversation)

    def _call(self, method: str, reference: ConversationReference, url: str, body: dict[str, Any] | None, *,
              trusted: bool, retries: int) -> dict[str, Any]:
        """PUT or DELETE of a sent activity (both safe to repeat: the same PUT twice leaves the same message,
        a second DELETE finds nothing); a change to a message counts against its conversation's limits."""
        return self._request(method, reference.service_url, url, body=body, trusted=trusted, retries=retries,
                             conversation=reference)

    def _request(self, method: str, service_url: str, url: str, *, body: dict[str, Any] | None = None,
                 params: dict[str, str] | None = None, trusted: bool, retries: int,
                 conversation: ConversationReference | None = None) -> dict[str, Any]:
        """One call with bounded retries on what is safe to retry: 429/503 (the message was not taken),
        412/502/504 with backoff, and one retry with a fresh token after a 401. Every call naming a
        conversation first waits for that conversation's limits."""
        attempt = 0
        refreshed_token = False
        while True:
            if conversation is not None and self._conversations is not None:
                self._conversations.acquire(f"{conversation.channel_id}:{conversation.conversation.id}")
            try:
                return self._request_once(method, service_url, url, body, params, trusted=trusted)
            except _TokenRejected as exc:
                if refreshed_token or not hasattr(self._credentials, "invalidate"):
                    raise AppRejected(
                        "the channel rejected the bot's token: check MicrosoftAppId and MicrosoftAppPassword",
                        code="BotNotRegistered" if exc.code == "BotNotRegistered" else "token_rejected",
                    ) from None
                self._credentials.invalidate()  # type: ignore[attr-defined]
                refreshed_token = True
            except (Throttled, Upstream) as exc:
                transient = isinstance(exc, Throttled) or exc.transient
                if not transient or attempt >= retries:
                    raise
                wait = exc.retry_after if isinstance(exc, Throttled) and exc.retry_after is not None else _backoff(attempt)
                if wait > MAX_RETRY_AFTER:
                    raise
                attempt += 1
                self._sleep(wait)

    def _request_once(self, method: str, service_url: str, url: str, body: dict[str, Any] | None,
                      params: dict[str, str] | None, *, trusted: bool) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        authorization = self._credentials.authorization(service_url, trusted=trusted)
        if authorization:
            headers["Authorization"] = authorization
        try:
            response = self._session.request(method, url, json=body, params=params, headers=headers,
                                             timeout=self._timeout)
        except requests.Timeout as exc:
            raise Upstream("the channel did not answer in time", code="timeout") from exc
        except requests.RequestException as exc:
            raise Upstream(f"could not reach the channel: {type(exc).__name__}", code="unreachable") from exc
        if response.status_code in (200, 201, 202, 204):
            try:
                data = response.json()
            except ValueError:
                data = {}
            return data if isinstance(data, dict) else {}
        raise _error_for(response)


class _TokenRejected(AppError):
    status = 401


class ActivityNotFound(AppError):
    """The channel has no such message in that conversation (deleted already, or never the bot's):
    an edit or recall of it can never succeed, and says nothing about the recipient."""

    status = 404


def _error_for(response: requests.Response) -> AppError:
    """Map the connector's answer to the app's error types (PROTOCOL.md, throttling and errors)."""
    status = response.status_code
    code, message, sub_code = _error_body(response)
    operation_id = response.headers.get("X-Correlating-OperationId", "")
    error: AppError
    if status == 401:
        error = _TokenRejected(message or "unauthorized", code=code or "Unauthorized")
    elif code in APP_REJECTED_CODES:
        error = AppRejected(f"the channel refuses the bot: {code}", code=code)
    elif code == "ActivityNotFoundInConversation" or sub_code == "ActivityNotFoundInConversation":
        error = ActivityNotFound("the channel has no such message in the conversation",
                                 code="ActivityNotFoundInConversation")
    elif status == 429 or status == 503:
        error = Throttled(f"the channel is throttling ({status})", retry_after=_retry_after(response), status=status)
    elif status in (403, 404):
        reason = sub_code if sub_code in GONE_CODES else code or ("ConversationNotFound" if status == 404 else "Forbidden")
        error = RecipientGone(f"the recipient cannot be reached: {reason}", code=reason)
    elif status == 413:
        error = BadInput("the channel refused the message as too big", code=code or "MessageSizeTooBig")
    elif status == 400:
        error = BadInput(f"the channel refused the message: {code or 'BadRequest'}", code=code or "BadRequest")
    elif status in (412, 502, 504):
        error = Upstream(f"the channel failed ({status})", code=code or f"http_{status}", transient=True)
    else:
        error = Upstream(f"the channel failed ({status})", code=code or f"http_{status}", transient=False)
    error.operation_id = operation_id
    log.warning("connector answered %s %s (operation id %s)", status, error.code, operation_id or "-")
    return error


def _error_body(response: requests.Response) -> tuple[str, str, str]:
    try:
        data = response.json()
    except ValueError:
        return "", "", ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", "", ""
    inner = error.get("innerHttpError")
    sub_code = ""
    if isinstance(inner, dict) and isinstance(inner.get("body"), dict):
        sub_code = str(inner["body"].get("subCode") or "")
    return str(error.get("code") or ""), str(error.get("message") or ""), sub_code


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from the connector; fall back to backoff


def _backoff(attempt: int) -> float:
    return min(8.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2)


def _activity_url(reference: ConversationReference, activity_id: str) -> str:
    return (f"{_base(reference.service_url)}/v3/conversations/{quote(reference.conversation.id, safe='')}"
            f"/activities/{quote(activity_id, safe='')}")


def _base(service_url: str) -> str:
    return service_url.rstrip("/")
