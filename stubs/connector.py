"""The Bot Connector service: the channel-side REST API a bot sends its messages to."""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from stubs.server import StubRequest, StubResponse, StubServer


@dataclass(frozen=True)
class Fault:
    """One error answer, shaped as the connector shapes it."""

    status: int
    code: str = ""
    retry_after: float | None = None
    sub_code: str = ""

    def response(self) -> StubResponse:
        headers = {"X-Correlating-OperationId": uuid.uuid4().hex}
        if self.retry_after is not None:
            headers["Retry-After"] = str(int(self.retry_after)) if float(self.retry_after).is_integer() else str(self.retry_after)
        error: dict[str, Any] = {"code": self.code or _DEFAULT_CODES.get(self.status, "ServiceError"),
                                 "message": f"stub fault {self.status}"}
        if self.sub_code:
            error["innerHttpError"] = {"statusCode": self.status, "body": {"subCode": self.sub_code}}
        return StubResponse(self.status, {"error": error}, headers)


_DEFAULT_CODES = {
    403: "ConversationBlockedByUser",
    404: "ConversationNotFound",
    429: "Throttled",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

FaultPolicy = Callable[[str, int], "Fault | None"]  # (conversation id, attempt number from 1) -> fault


class RandomFaults:
    """Faults drawn with a fixed seed: per attempt for 429/503, per conversation for 403.

    A conversation chosen as gone answers 403 on every attempt, like a user who
    blocked the bot; throttling and outages are drawn again on each attempt.
    """

    def __init__(self, *, seed: int = 7, throttled: float = 0.0, unavailable: float = 0.0, gone: float = 0.0,
                 retry_after: float = 1) -> None:
        self.throttled, self.unavailable, self.gone = throttled, unavailable, gone
        self.retry_after = retry_after
        self.seed = seed
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def is_gone(self, conversation_id: str) -> bool:
        digest = hashlib.sha256(f"{self.seed}:{conversation_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.gone

    def __call__(self, conversation_id: str, attempt: int) -> Fault | None:
        if self.is_gone(conversation_id):
            return Fault(403, "ConversationBlockedByUser")
        with self._lock:
            draw = self._random.random()
        if draw < self.throttled:
            return Fault(429, "Throttled", retry_after=self.retry_after)
        if draw < self.throttled + self.unavailable:
            return Fault(503, "ServiceUnavailable")
        return None


class ChannelLimits:
    """Teams' throttling as the channel applies it, for the connector stub.

    - tenant_limit: sends per sliding second per tenant (the activity's conversation.tenantId or
      channelData.tenant.id; without one, the whole bot is one tenant ""); above it, 429 with
      Retry-After: 1. None: no limit, only counting.
    - per_conversation: also 7 per 1 s and 8 per 2 s in one conversation (sliding), 429 above.

    Counters for tests: `throttled(tenant)` (429s), `sent(tenant)`, `per_second(tenant)` (sends per
    calendar second), `max_in_any_second(tenant)` (the most accepted in any sliding second).
    """

    CONVERSATION_LIMITS = ((7, 1.0), (8, 2.0))

    def __init__(self, tenant_limit: int | None = None, *, per_conversation: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.tenant_limit, self.per_conversation, self._clock = tenant_limit, per_conversation, clock
        self._lock = threading.Lock()
        self._recent: dict[str, list[float]] = defaultdict(list)  # accepted in the last second, per tenant
        self._conversations: dict[str, list[float]] = defaultdict(list)  # accepted in the last 2 s
        self._throttled: dict[str, int] = defaultdict(int)
        self._sent: dict[str, int] = defaultdict(int)
        self._seconds: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self._max: dict[str, int] = defaultdict(int)

    @staticmethod
    def tenant_of(activity: dict[str, Any]) -> str:
        conversation = activity.get("conversation") if isinstance(activity.get("conversation"), dict) else {}
        channel_data = activity.get("channelData") if isinstance(activity.get("channelData"), dict) else {}
        tenant = channel_data.get("tenant") if isinstance(channel_data.get("tenant"), dict) else {}
        return str(conversation.get("tenantId") or tenant.get("id") or "")

    def admit(self, conversation_id: str, activity: dict[str, Any]) -> Fault | None:
        """Count one send, or answer 429 as Teams does when it is over a limit."""
        tenant = self.tenant_of(activity)
        with self._lock:
            now = self._clock()
            recent = self._recent[tenant]
            recent[:] = [t for t in recent if t > now - 1.0]
            over = self.tenant_limit is not None and len(recent) >= self.tenant_limit
            if self.per_conversation and not over:
                sent = self._conversations[conversation_id]
                sent[:] = [t for t in sent if t > now - 2.0]
                over = any(sum(1 for t in sent if t > now - seconds) >= n for n, seconds in self.CONVERSATION_LIMITS)
            if over:
                self._throttled[tenant] += 1
                return Fault(429, "Throttled", retry_after=1)
            recent.append(now)
            if self.per_conversation:
                self._conversations[conversation_id].append(now)
            self._sent[tenant] += 1
            self._seconds[tenant][int(now)] += 1
            self._max[tenant] = max(self._max[tenant], len(recent))
            return None

    def throttled(self, tenant: str = "") -> int:
        with self._lock:
            return self._throttled.get(tenant, 0)

    def sent(self, tenant: str = "") -> int:
        with self._lock:
            return self._sent.get(tenant, 0)

    def per_second(self, tenant: str = "") -> dict[int, int]:
        with self._lock:
            return dict(self._seconds.get(tenant, {}))

    def max_in_any_second(self, tenant: str = "") -> int:
        with self._lock:
            return self._max.get(tenant, 0)

    def tenants(self) -> list[str]:
        with self._lock:
            return sorted(set(self._sent) | set(self._throttled))

    def throttled_total(self) -> int:
        with self._lock:
            return sum(self._throttled.values())


class ConnectorStub:
    """`/v3/conversations/...` routes. Records what each conversation received.

    - latency: seconds every answer waits (the network and the channel);
    - faults: a FaultPolicy, or per-conversation queued faults with `fail_next`;
    - token_check: when set, a request without `Authorization: Bearer <valid>` gets 401;
    - on_activity: called with (conversation id, activity) for every stored activity
      (the local chat shows them as they arrive).
    - limits: a ChannelLimits, the channel's per-tenant and per-conversation throttling
      (or, for short, tenant_limit=50 and conversation_limits=True build one);
    - numeric_ids: activity ids as Teams gives them in personal chats (epoch milliseconds, rising), not
      opaque hex (read receipts compare them as numbers).
    """

    def __init__(self, *, latency: float = 0.0, faults: FaultPolicy | None = None,
                 token_check: Callable[[str], bool] | None = None,
                 on_activity: Callable[[str, dict[str, Any]], None] | None = None,
                 limits: ChannelLimits | None = None, tenant_limit: int | None = None,
                 conversation_limits: bool = False, numeric_ids: bool = False) -> None:
        if limits is None and (tenant_limit is not None or conversation_limits):
            limits = ChannelLimits(tenant_limit, per_conversation=conversation_limits)
        self.limits = limits  # Teams' throttling (ChannelLimits); None: no limit
        self.latency = latency
        self.faults = faults
        self.token_check = token_check
        self.on_activity = on_activity
        self.numeric_ids = numeric_ids
        self._last_numeric_id = 0
        self._lock = threading.Lock()
        self._activities: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._arrivals: dict[str, list[float]] = defaultdict(list)  # time.time() of each stored activity
        self._attempts: dict[str, int] = defaultdict(int)
        self._queued: dict[str, list[Fault]] = defaultdict(list)
        self.requests: list[tuple[str, str, bool]] = []  # (method, path, had a bearer token)
        # What PUT and DELETE did to the activities this stub created: (conversation id, activity id, body).
        self.updated: list[tuple[str, str, dict[str, Any]]] = []
        self.deleted: list[tuple[str, str]] = []
        self._edit_attempts: dict[str, int] = defaultdict(int)
        self.authorization_headers_seen = 0
        self._teams = _TeamsRosters()
        self._server = StubServer(self._handle)

    # --- lifecycle -------------------------------------------------------
    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> ConnectorStub:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> ConnectorStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what tests read and arrange --------------------------------------
    def activities(self, conversation_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._activities.get(conversation_id, ()))

    def all_activities(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {k: list(v) for k, v in self._activities.items() if v}

    def all_arrival_times(self) -> dict[str, list[float]]:
        with self._lock:
            return {cid: list(times) for cid, times in self._arrivals.items()}

    def arrival_times(self, conversation_id: str) -> list[float]:
        """When each of the conversation's activities arrived (epoch seconds), in order."""
        with self._lock:
            return list(self._arrivals.get(conversation_id, ()))

    def texts(self, conversation_id: str) -> list[str]:
        return [a.get("text", "") for a in self.activities(conversation_id)]

    def attempts(self, conversation_id: str) -> int:
        with self._lock:
            return self._attempts.get(conversation_id, 0)

    def total_delivered(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._activities.values())

    def fail_next(self, conversation_id: str, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._queued[conversation_id].extend([fault] * times)

    def wait_for(self, conversation_id: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `conversation_id` has received at least `count` activities."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.activities(conversation_id)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        return self.activities(conversation_id)

    # --- Teams: rosters and 1:1 conversations ----------------------------
    def add_team(self, team_id: str, members: int | list[str], *, tenant_id: str = "tenant-1") -> list[str]:
        """A team with the bot installed and `members` (a count: ids `29:<team>-<i>`); returns the ids.
        From then on the stub answers POST /v3/conversations as Teams does (see _TeamsRosters)."""
        ids = [f"29:{team_id}-{i}" for i in range(members)] if isinstance(members, int) else list(members)
        self._teams.add(team_id, ids, tenant_id)
        return ids

    def remove_member(self, team_id: str, user_id: str) -> None:
        self._teams.remove_member(team_id, user_id)

    def uninstall_team(self, team_id: str) -> None:
        """The bot is no longer in the team: its roster answers 403 BotNotInConversationRoster."""
        self._teams.uninstall(team_id)

    def _fault_for(self, key: str) -> Fault | None:
        """The fault for a roster read or a conversation creation, as for a send: queued, then the policy."""
        with self._lock:
            self._attempts[key] += 1
            attempt = self._attempts[key]
            queued = self._queued.get(key)
            fault = queued.pop(0) if queued else None
        if fault is None and self.faults is not None:
            fault = self.faults(key, attempt)
        return fault

    @property
    def conversations_created(self) -> int:
        """How many 1:1 conversations POST /v3/conversations created (asking again for one is not counted)."""
        return self._teams.created

    @property
    def conversation_requests(self) -> list[dict[str, Any]]:
        """Every POST /v3/conversations body, in order."""
        return self._teams.requests()

    @property
    def roster_pages_served(self) -> list[int]:
        """The page size of each pagedmembers answer, in order."""
        return self._teams.pages()

    # --- the service -----------------------------------------------------
    def _handle(self, request: StubRequest) -> StubResponse:
        parts = request.path.split("/")
        # ['', 'v3', 'conversations', id?, 'activities'?, activityId?]
        if len(parts) < 3 or parts[1] != "v3" or parts[2] != "conversations":
            return Fault(404, "NotFound").response()
        auth = request.headers.get("Authorization") or request.headers.get("authorization") or ""
        has_bearer = auth.startswith("Bearer ")
        with self._lock:
            self.requests.append((request.method, request.path, has_bearer))
            if auth:
                self.authorization_headers_seen += 1
        if self.token_check is not None and not (has_bearer and self.token_check(auth[len("Bearer "):])):
            return StubResponse(401, {"error": {"code": "Unauthorized", "message": "bad or missing token"}})
        if self.latency:
            time.sleep(self.latency)
        if request.method in ("PUT", "DELETE"):
            return self._edit(request, parts)
        if request.method == "GET" and len(parts) == 5 and parts[4] == "pagedmembers":
            team_id = unquote(parts[3])
            fault = self._fault_for(roster_fault_key(team_id))
            return fault.response() if fault else self._teams.paged_members(team_id, parse_qs(request.query))
        if request.method != "POST":
            return Fault(405, "MethodNotAllowed").response()
        try:
            body = request.json()
        except ValueError:
            return Fault(400, "BadSyntax").response()
        if len(parts) == 3:
            return self._create_conversation(body)
        if len(parts) not in (5, 6) or parts[4] != "activities":
            return Fault(404, "NotFound").response()
        conversation_id = unquote(parts[3])
        if not isinstance(body, dict) or not body.get("type"):
            return Fault(400, "MissingProperty").response()
        with self._lock:
            self._attempts[conversation_id] += 1
            attempt = self._attempts[conversation_id]
            queued = self._queued.get(conversation_id)
            fault = queued.pop(0) if queued else None
        if fault is None and self.faults is not None:
            fault = self.faults(conversation_id, attempt)
        if fault is None and self.limits is not None:
            fault = self.limits.admit(conversation_id, body)
        if fault is not None:
            return fault.response()
        activity_id = self._new_activity_id()
        stored = dict(body, id=activity_id)
        if len(parts) == 6:
            stored["replyToId"] = unquote(parts[5])
        with self._lock:
            self._activities[conversation_id].append(stored)
            self._arrivals[conversation_id].append(time.time())
        if self.on_activity is not None:
            self.on_activity(conversation_id, stored)
        return StubResponse(200, {"id": activity_id})

    def _new_activity_id(self) -> str:
        if not self.numeric_ids:
            return uuid.uuid4().hex
        with self._lock:
            self._last_numeric_id = max(self._last_numeric_id + 1, int(time.time() * 1000))
            return str(self._last_numeric_id)

    def _edit(self, request: StubRequest, parts: list[str]) -> StubResponse:
        """PUT (update in place) or DELETE one activity this stub created; 404 ActivityNotFoundInConversation
        for any other id, and for one already deleted. Queued faults and the fault policy apply, as to sends."""
        if len(parts) != 6 or parts[4] != "activities" or not parts[5]:
            return Fault(404, "NotFound").response()
        conversation_id, activity_id = unquote(parts[3]), unquote(parts[5])
        body: Any = None
        if request.method == "PUT":
            try:
                body = request.json()
            except ValueError:
                return Fault(400, "BadSyntax").response()
            if not isinstance(body, dict) or not body.get("type"):
                return Fault(400, "MissingProperty").response()
        with self._lock:
            self._edit_attempts[conversation_id] += 1
            attempt = self._edit_attempts[conversation_id]
            queued = self._queued.get(conversation_id)
            fault = queued.pop(0) if queued else None
        if fault is None and self.faults is not None:
            fault = self.faults(conversation_id, attempt)
        if fault is not None:
            return fault.response()
        with self._lock:
            stored = self._activities.get(conversation_id, [])
            index = next((i for i, a in enumerate(stored) if a.get("id") == activity_id), None)
            if index is None:
                return Fault(404, "ActivityNotFoundInConversation").response()
            if request.method == "DELETE":
                del stored[index]
                arrivals = self._arrivals.get(conversation_id, [])
                if index < len(arrivals):
                    del arrivals[index]
                self.deleted.append((conversation_id, activity_id))
                return StubResponse(200, {})
            updated = dict(body, id=activity_id)
            if "replyToId" in stored[index]:
                updated.setdefault("replyToId", stored[index]["replyToId"])
            stored[index] = updated
            self.updated.append((conversation_id, activity_id, dict(body)))
        return StubResponse(200, {"id": activity_id})

    def _create_conversation(self, body: Any) -> StubResponse:
        if self._teams.enabled:
            members = body.get("members") if isinstance(body, dict) else None
            first = members[0] if isinstance(members, list) and members and isinstance(members[0], dict) else {}
            fault = self._fault_for(create_fault_key(str(first.get("id") or "")))
            return fault.response() if fault else self._teams.create_conversation(body)
        if not isinstance(body, dict) or not body.get("bot") or not body.get("members"):
            return Fault(400, "MissingProperty").response()
        conversation_id = f"conv-{uuid.uuid4().hex}"
        activity_id = ""
        stored = None
        if isinstance(body.get("activity"), dict):
            activity_id = uuid.uuid4().hex
            stored = dict(body["activity"], id=activity_id)
            with self._lock:
                self._activities[conversation_id].append(stored)
            self._arrivals[conversation_id].append(time.time())
        if stored is not None and self.on_activity is not None:
            self.on_activity(conversation_id, stored)
        return StubResponse(201, {"id": conversation_id, "activityId": activity_id, "serviceUrl": self.url})


def roster_fault_key(team_id: str) -> str:
    """The key `fail_next` and a FaultPolicy see for a team's pagedmembers."""
    return f"pagedmembers:{team_id}"


def create_fault_key(user_id: str) -> str:
    """The key `fail_next` and a FaultPolicy see for creating a 1:1 with `user_id`."""
    return f"create:{user_id}"


# Not documented by Teams: the size of a page when the caller gives none.
DEFAULT_PAGE_SIZE = 200


class _TeamsRosters:
    """Teams' side of rosters and 1:1 conversations.

    - pagedmembers: pageSize below 50 counts as 50, above 500 as 500; `continuationToken` is opaque
      and says where the next page starts; an unknown team is a 404, a team without the bot a 403;
    - POST /v3/conversations needs `channelData.tenant.id` (400 without it); a 1:1 with a user is
      created once and the same conversation is returned after; a user in no team of the bot is
      a 403 (the bot cannot start a chat with someone it does not share a team with).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.enabled = False
        self._members: dict[str, list[str]] = {}
        self._tenants: dict[str, str] = {}
        self._installed: dict[str, bool] = {}
        self._tokens: dict[str, tuple[str, int]] = {}
        self._personal: dict[str, str] = {}  # user id -> conversation id
        self._requests: list[dict[str, Any]] = []
        self._pages: list[int] = []
        self.created = 0

    def add(self, team_id: str, ids: list[str], tenant_id: str) -> None:
        with self._lock:
            self.enabled = True
            self._members[team_id] = list(ids)
            self._tenants[team_id] = tenant_id
            self._installed[team_id] = True

    def remove_member(self, team_id: str, user_id: str) -> None:
        with self._lock:
            self._members[team_id] = [m for m in self._members[team_id] if m != user_id]

    def uninstall(self, team_id: str) -> None:
        with self._lock:
            self._installed[team_id] = False

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def pages(self) -> list[int]:
        with self._lock:
            return list(self._pages)

    def paged_members(self, team_id: str, query: dict[str, list[str]]) -> StubResponse:
        with self._lock:
            if team_id not in self._members:
                return Fault(404, "ConversationNotFound").response()
            if not self._installed[team_id]:
                return Fault(403, "BotNotInConversationRoster").response()
            try:
                size = int(query.get("pageSize", [DEFAULT_PAGE_SIZE])[0])
            except ValueError:
                return Fault(400, "BadArgument").response()
            size = min(500, max(50, size))
            start = 0
            token = query.get("continuationToken", [""])[0]
            if token:
                if token not in self._tokens or self._tokens[token][0] != team_id:
                    return Fault(400, "BadArgument").response()
                start = self._tokens[token][1]
            members = self._members[team_id]
            page = members[start : start + size]
            body: dict[str, Any] = {"members": [
                {"id": m, "name": f"Member {m}", "aadObjectId": f"aad-{m}", "userPrincipalName": f"{m}@example.com",
                 "tenantId": self._tenants[team_id], "userRole": "user"} for m in page]}
            if start + size < len(members):
                next_token = uuid.uuid4().hex
                self._tokens[next_token] = (team_id, start + size)
                body["continuationToken"] = next_token
            self._pages.append(len(page))
        return StubResponse(200, body)

    def create_conversation(self, body: Any) -> StubResponse:
        if not isinstance(body, dict) or not isinstance(body.get("bot"), dict) or not isinstance(body.get("members"), list):
            return Fault(400, "MissingProperty").response()
        channel_data = body.get("channelData") if isinstance(body.get("channelData"), dict) else {}
        tenant = channel_data.get("tenant") if isinstance(channel_data.get("tenant"), dict) else {}
        tenant_id = tenant.get("id") or body.get("tenantId")
        members = [m.get("id") for m in body["members"] if isinstance(m, dict)]
        with self._lock:
            self._requests.append(body)
            if not tenant_id:
                return Fault(400, "BadArgument").response()
            if body.get("isGroup") or len(members) != 1 or not members[0]:
                return Fault(400, "BadArgument").response()
            user_id = members[0]
            existing = self._personal.get(user_id)
            if existing is None:
                shared = [t for t, ids in self._members.items()
                          if user_id in ids and self._installed[t] and self._tenants[t] == tenant_id]
                if not shared:
                    return Fault(403, "Forbidden").response()
                existing = self._personal[user_id] = f"a:{hashlib.sha256(user_id.encode()).hexdigest()[:24]}"
                self.created += 1
        return StubResponse(201, {"id": existing})
