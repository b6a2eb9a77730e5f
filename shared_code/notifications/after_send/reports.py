"""Reports: a notification's recipients, and a survey run's answers, as CSV built a page at a time.

The Functions v1 Python HttpResponse takes one whole body, so the CSV itself is held in memory,
but never the entities behind it: the ledger (or the answers table) is read a page at a time,
each page is joined and written out, and the next page replaces it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core.exceptions import ResourceNotFoundError

from shared_code.notifications.records import ledger_reads
from shared_code.notifications.records.ledger import DeliveryState, RecipientKey
from shared_code.plumbing.errors import NotFound
from shared_code.protocol.graph import is_object_id
from shared_code.storage.tables import is_table_missing

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

T = TypeVar("T")

RECIPIENT_COLUMNS = ("channel", "conversation", "user id", "user name", "locale", "state", "code", "sent at",
                     "activity id", "acknowledged at", "reaction", "aad object id", "read at")
AUDIT_COLUMNS = ("notification", "action", "by", "by id", "at")
ANSWER_COLUMNS = ("run id", "conversation", "user id", "question index", "question", "answer", "answered at")
PAGE_SIZE = 200
# A spreadsheet runs a cell that starts with one of these as a formula: user-written text must not.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def notification_report(notification_id: str, services: NotificationServices) -> bytes:
    """One row per recipient in the ledger (RECIPIENT_COLUMNS), UTF-8, header first. NotFound if unknown."""
    if services.notifications.get(notification_id) is None:
        raise NotFound("no notification with that id")
    deliveries = services.ledger.table
    rows = ledger_reads.deliveries(deliveries, notification_id, page_size=PAGE_SIZE)
    writer = _CsvBody(RECIPIENT_COLUMNS)
    for page in _pages(rows, PAGE_SIZE):
        writer.write(_recipient_rows(notification_id, page, services))
    return writer.body()


def _recipient_rows(notification_id: str, page: list[dict[str, Any]], services: NotificationServices) -> list[list[str]]:
    """One page of ledger rows joined with their addresses, acknowledgements and reads (a few queries each)."""
    keys = [RecipientKey(row["ChannelId"], row["ConversationId"]) for row in page]
    # A person (a team's member, someone of the organisation) is keyed by who they are; their message went
    # to their chat (`SentTo`), which is the conversation shown.
    chats = [(k.channel_id, row.get("SentTo") or k.conversation_id) for k, row in zip(keys, page, strict=True)]
    addresses = services.addresses.get_many(chats)
    acknowledged = services.acknowledgements.acknowledged_many(notification_id, keys)
    read = services.reads.read_many(notification_id, keys)
    out = []
    for key, chat, row in zip(keys, chats, page, strict=True):
        address = addresses.get(chat)
        state = row.get("State") or ""
        # Rows written before the ledger kept SentAt show when they were last updated.
        activity_id = str(row.get("ActivityId") or "")
        sent_at = row.get("SentAt") or (row.get("UpdatedAt") if state == DeliveryState.SENT.value else None)
        reaction = services.acknowledgements.reaction(key, activity_id) if activity_id else ""
        user = address.reference.user if address is not None else None
        out.append([key.channel_id, chat[1], user.id if user else "", _text(user.name if user else ""),
                    address.reference.locale if address is not None else "", state, str(row.get("Code") or ""),
                    _time(sent_at), activity_id, _time(acknowledged.get(key)), _text(reaction),
                    user.aad_object_id if user and user.aad_object_id else _person(key), _time(read.get(key))])
    return out


def _person(key: RecipientKey) -> str:
    """A person of the organisation is keyed by their object id: known even when no chat was reached."""
    return key.conversation_id if is_object_id(key.conversation_id) else ""


def survey_answers_report(run_id: str, services: NotificationServices) -> bytes:
    """One row per answer of one survey run (ANSWER_COLUMNS). NotFound when the run has no answers."""
    table = services.table_service.get_table_client(services.settings.survey_answers_table)
    query = table.query_entities("RunId eq @run", parameters={"run": run_id}, results_per_page=PAGE_SIZE,
                                 select=["ConversationId", "RunId", "QuestionIndex", "Question", "Answer",
                                         "AnsweredAt"])
    writer = _CsvBody(ANSWER_COLUMNS)
    try:
        for page in _pages(query, PAGE_SIZE):
            users: dict[str, str] = {}  # one address read per conversation and page
            for row in page:
                conversation = row["ConversationId"]
                if conversation not in users:
                    address = services.addresses.get(conversation)
                    users[conversation] = address.reference.user.id if address is not None else ""
            writer.write([row["RunId"], row["ConversationId"], users[row["ConversationId"]],
                          str(row.get("QuestionIndex", "")), _text(row.get("Question") or ""),
                          _text(row.get("Answer") or ""), _time(row.get("AnsweredAt"))] for row in page)
    except ResourceNotFoundError as error:
        if not is_table_missing(error):
            raise
    if writer.rows == 0:
        raise NotFound("no answers for that survey run")
    return writer.body()


def for_notification(kind: str, notification_id: str, services: NotificationServices) -> tuple[bytes, str]:
    """GET /api/notify/{id}/report or /audit: (the CSV, its file name)."""
    if kind == "report":
        return notification_report(notification_id, services), f"{notification_id}.csv"
    return audit_report(notification_id, services), f"{notification_id}-audit.csv"


NOTIFICATION_REPORTS = ("report", "audit")


def audit_report(notification_id: str, services: NotificationServices) -> bytes:
    """Who created the notification and who edited, recalled or cancelled it, oldest first (AUDIT_COLUMNS)."""
    notification = services.notifications.get(notification_id)
    if notification is None:
        raise NotFound("no notification with that id")
    entry = services.catalogue.get(notification_id, notification.created_at) if notification.created_at else None
    writer = _CsvBody(AUDIT_COLUMNS)
    writer.write([_text(notification_id), item.get("action", ""), _text(item.get("by", "")), item.get("byId", ""),
                  item.get("at", "")] for item in (entry.audit if entry else ()))
    return writer.body()


class _CsvBody:
    """The CSV being built: rows are encoded as they come, so only the text is kept, not the rows."""

    def __init__(self, header: Iterable[str]) -> None:
        self._buffer = io.BytesIO()
        self._text = io.TextIOWrapper(self._buffer, encoding="utf-8", newline="", write_through=True)
        self._writer = csv.writer(self._text)
        self._writer.writerow(header)
        self.rows = 0

    def write(self, rows: Iterable[list[str]]) -> None:
        for row in rows:
            self._writer.writerow(row)
            self.rows += 1

    def body(self) -> bytes:
        self._text.flush()
        return self._buffer.getvalue()


def _pages(items: Iterable[T], size: int) -> Iterator[list[T]]:
    page: list[T] = []
    for item in items:
        page.append(item)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _time(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else ""


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_STARTS) else value
