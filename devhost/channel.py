"""The local chat channel: plays the Bot Framework channel for a person in a terminal.

What the person types goes to the bot's /api/messages as `message` activities; the bot's
replies and proactive messages arrive on a ConnectorStub (the activities' serviceUrl) and
are printed as they come, whoever started them. A card's text is printed as lines and its buttons
numbered: `/click N` presses one as Teams would (Action.Execute: an `adaptiveCard/action` invoke, whose
answer is printed; Action.Submit: a message carrying the button's data; Action.OpenUrl: the URL is printed),
and `/read` sends the read receipt Teams sends when the person has read the chat.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import requests

from stubs.connector import ConnectorStub
from stubs.graph import GraphStub, aad_id

CHANNEL_ID = "localchat"
BOT = {"id": "bot", "name": "Bot"}
HELP = ("commands: /user NAME (switch or create a user), /users, /curl, "
        "/group NAME USER... (people who never wrote, in a Graph group), "
        "/click N (press button N of the last card in your chat), "
        "/read (tell the bot you read your chat, as Teams' read receipt does), /help, /quit")
GROUP_USAGE = "usage: /group NAME USER [USER...]: a group of people who never wrote to the bot, in the Graph stub"
DIRECTORY_DOMAIN = "localchat.example"  # the users /group makes are USER@localchat.example
_DIRECTORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
CARD_ACTION = "adaptiveCard/action"
READ_RECEIPT = "application/vnd.microsoft.readReceipt"
_CONTAINERS = {"Container": "items", "Column": "items", "ColumnSet": "columns", "TableCell": "items",
               "Table": "rows", "TableRow": "cells"}

# Returns the Authorization header value for one outgoing activity ("Bearer <jwt>").
Signer = Callable[[dict[str, Any]], str]


@dataclass
class LocalUser:
    name: str
    id: str
    conversation_id: str


def new_user(name: str) -> LocalUser:
    suffix = uuid.uuid4().hex[:8]
    return LocalUser(name=name, id=f"user-{name}-{suffix}", conversation_id=f"localchat-{name}-{suffix}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe(activity: dict[str, Any]) -> str:
    """One line for a bot activity: its text, plus what a terminal cannot show."""
    text = str(activity.get("text") or "")
    actions = (activity.get("suggestedActions") or {}).get("actions") or []
    if actions:
        text += "  [" + " | ".join(str(a.get("title") or a.get("value")) for a in actions) + "]"
    attachments = activity.get("attachments") or []
    if attachments:
        text += f"  ({len(attachments)} attachment{'s' if len(attachments) > 1 else ''})"
    return text or f"({activity.get('type', 'activity')})"


@dataclass
class ShownCard:
    """The latest card shown in a conversation: the activity that carried it and its buttons, in order."""

    activity_id: str
    buttons: list[dict[str, Any]]


def cards_of(activity: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["content"] for a in activity.get("attachments") or []
            if isinstance(a, dict) and a.get("contentType") == ADAPTIVE_CARD and isinstance(a.get("content"), dict)]


def card_lines(card: dict[str, Any]) -> list[str]:
    """An Adaptive Card's text as plain lines: TextBlocks, rich text, facts ("title: value"), images' alt text,
    inputs by their label; containers, columns and tables read in order."""
    lines: list[str] = []
    for element in card.get("body") or []:
        _element_lines(element, lines)
    return lines


def _element_lines(element: Any, lines: list[str]) -> None:
    if not isinstance(element, dict):
        return
    kind = element.get("type")
    if kind == "TextBlock" and element.get("text"):
        lines.append(str(element["text"]))
    elif kind == "RichTextBlock":
        lines.append("".join(str(i.get("text") or "") if isinstance(i, dict) else str(i)
                             for i in element.get("inlines") or []))
    elif kind == "FactSet":
        lines.extend(f"{f.get('title', '')}: {f.get('value', '')}" for f in element.get("facts") or []
                     if isinstance(f, dict))
    elif kind == "Image":
        lines.append(f"[image: {element.get('altText') or element.get('url') or ''}]")
    elif isinstance(kind, str) and kind.startswith("Input."):
        lines.append(f"[input {element.get('label') or element.get('placeholder') or element.get('id') or ''}]")
    elif kind in _CONTAINERS:
        for child in element.get(_CONTAINERS[kind]) or []:
            _element_lines(child, lines)


def card_buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's buttons in the order Teams shows them: ActionSets in its body, then its actions."""
    buttons: list[dict[str, Any]] = []

    def visit(element: Any) -> None:
        if not isinstance(element, dict):
            return
        if element.get("type") == "ActionSet":
            buttons.extend(a for a in element.get("actions") or [] if isinstance(a, dict))
        for child in element.get(_CONTAINERS.get(str(element.get("type")), "items")) or []:
            visit(child)

    for element in card.get("body") or []:
        visit(element)
    buttons.extend(a for a in card.get("actions") or [] if isinstance(a, dict))
    return buttons


def button_label(number: int, button: dict[str, Any]) -> str:
    title = button.get("title") or button.get("verb") or button.get("type")
    url = f" -> {button['url']}" if button.get("type") == "Action.OpenUrl" and button.get("url") else ""
    return f"  [{number}] {title}{url}"


class LocalChannel:
    """The channel side of a chat: `join`/`switch` users, `say` text, print every bot activity to `out`."""

    def __init__(self, bot_url: str, *, out: TextIO = sys.stdout, sign: Signer | None = None,
                 channel_id: str = CHANNEL_ID, timeout: float = 30.0) -> None:
        self.bot_url = bot_url
        self.out = out
        self.sign = sign
        self.channel_id = channel_id
        self.timeout = timeout
        self.users: dict[str, LocalUser] = {}
        self.current: LocalUser | None = None
        self.names: dict[str, str] = {}  # other conversations the chat shows by name (Graph users' 1:1 chats)
        self.cards: dict[str, ShownCard] = {}  # conversation id -> the latest card with buttons shown there
        self.last_message: dict[str, str] = {}  # conversation id -> the id of the latest bot message there
        # Numeric ids, as Teams gives in personal chats: a read receipt reads every message up to its id.
        self.connector = ConnectorStub(on_activity=self._show, numeric_ids=True)
        self._session = requests.Session()
        self._print_lock = threading.Lock()

    @property
    def service_url(self) -> str:
        return self.connector.url

    def start(self) -> LocalChannel:
        self.connector.start()
        return self

    def stop(self) -> None:
        self.connector.stop()
        self._session.close()

    def __enter__(self) -> LocalChannel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def attach_graph(self, graph: GraphStub) -> None:
        """Teams' side of installs made through the Graph stub: their conversationUpdates go to the bot as this
        channel sends its activities (signed when it signs), naming this channel's connector as serviceUrl."""
        graph.service_url = self.service_url
        graph.send = self._deliver

    def _deliver(self, activity: dict[str, Any]) -> int:
        response = self.send(activity)
        return 0 if response is None else response.status_code  # 0: the bot could not be reached

    def name_conversation(self, conversation_id: str, name: str) -> None:
        """Show the bot's messages to `conversation_id` as addressed to `name`."""
        self.names[conversation_id] = name

    # --- the person's side ------------------------------------------------------
    def switch(self, name: str) -> LocalUser:
        """Become `name`; a new user joins the bot first (conversationUpdate with membersAdded)."""
        user = self.users.get(name)
        if user is None:
            user = self.users[name] = new_user(name)
            self.current = user
            self.send(self.activity("conversationUpdate", membersAdded=[{"id": user.id, "name": user.name}, BOT]))
        self.current = user
        return user

    def say(self, text: str) -> requests.Response | None:
        return self.send(self.activity("message", text=text))

    def click(self, number: int) -> None:
        """Press button `number` (from 1) of the latest card in the current user's chat, as Teams would."""
        shown = self.cards.get(self.user.conversation_id)
        if shown is None or not 1 <= number <= len(shown.buttons):
            count = len(shown.buttons) if shown else 0
            self.print(f"(no button {number}: the latest card in your chat has {count})")
            return
        button = shown.buttons[number - 1]
        kind = button.get("type")
        if kind == "Action.OpenUrl":
            self.print(f"(opens {button.get('url', '')})")
        elif kind == "Action.Submit":
            self.send(self.activity("message", value=button.get("data"), replyToId=shown.activity_id))
        elif kind == "Action.Execute":
            value = {"action": {"type": "Action.Execute", "verb": button.get("verb"), "data": button.get("data")},
                     "trigger": "manual"}
            response = self.send(self.activity("invoke", name=CARD_ACTION, value=value, replyToId=shown.activity_id))
            if response is not None and response.status_code < 300:  # a refusal was printed by send
                self._show_invoke_answer(shown, response)
        else:
            self.print(f"(a {kind} button cannot be pressed in this chat)")

    def read(self) -> None:
        """Send the read receipt Teams sends when the person has read their chat: up to the latest bot message."""
        last = self.last_message.get(self.user.conversation_id)
        if last is None:
            self.print("(nothing from the bot in your chat to read yet)")
            return
        response = self.send(self.activity("event", name=READ_RECEIPT, value={"lastReadMessageId": last}))
        if response is not None and response.status_code < 300:
            self.print(f"(read receipt sent: read up to message {last})")

    def _show_invoke_answer(self, shown: ShownCard, response: requests.Response) -> None:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            self.print(f"(the bot answered {response.status_code} with no result)")
            return
        value = answer.get("value")
        if answer.get("type") == ADAPTIVE_CARD and isinstance(value, dict):
            self.print("(the card is now:)")
            self._print_card(value)
            buttons = card_buttons(value)
            if buttons:
                self.cards[self.user.conversation_id] = ShownCard(shown.activity_id, buttons)
            else:
                self.cards.pop(self.user.conversation_id, None)
        elif isinstance(value, dict):  # an error: {"code", "message"}
            self.print(f"(the bot answered {answer.get('statusCode')}: {value.get('message') or value})")
        else:
            self.print(f"(the bot answered {answer.get('statusCode')}: {value})")

    def activity(self, kind: str, **fields: Any) -> dict[str, Any]:
        user = self.user
        return {
            "type": kind,
            "id": uuid.uuid4().hex,
            "timestamp": _now(),
            "channelId": self.channel_id,
            "serviceUrl": self.service_url,
            "conversation": {"id": user.conversation_id},
            "from": {"id": user.id, "name": user.name},
            "recipient": dict(BOT),
            "locale": "en-US",
            **fields,
        }

    def send(self, activity: dict[str, Any]) -> requests.Response | None:
        headers = {"Content-Type": "application/json"}
        if self.sign is not None:
            headers["Authorization"] = self.sign(activity)
        try:
            response = self._session.post(self.bot_url, json=activity, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            self.print(f"(could not reach the bot at {self.bot_url}: {type(exc).__name__})")
            return None
        if response.status_code >= 300:
            self.print(f"(the bot answered {response.status_code}: {response.text[:200]})")
        return response

    # --- the bot's side ---------------------------------------------------------
    def _show(self, conversation_id: str, activity: dict[str, Any]) -> None:
        if activity.get("type") not in (None, "message"):
            return  # typing indicators and the like
        owner = next((u.name for u in self.users.values() if u.conversation_id == conversation_id),
                     self.names.get(conversation_id))
        to = "" if owner is not None and self.current is not None and owner == self.current.name \
            else f" (to {owner or conversation_id})"
        cards = cards_of(activity)
        activity_id = str(activity.get("id") or "")
        self.print(f"bot{to}: {describe(activity) if not cards or activity.get('text') else '(card)'}")
        buttons: list[dict[str, Any]] = []
        for card in cards:
            buttons.extend(self._print_card(card, first=len(buttons) + 1))
        if activity_id:
            self.last_message[conversation_id] = activity_id
        if buttons:
            self.cards[conversation_id] = ShownCard(activity_id, buttons)

    def _print_card(self, card: dict[str, Any], first: int = 1) -> list[dict[str, Any]]:
        for line in card_lines(card):
            self.print(f"    {line}")
        buttons = card_buttons(card)
        for number, button in enumerate(buttons, start=first):
            self.print(button_label(number, button))
        return buttons

    def print(self, line: str) -> None:
        with self._print_lock:
            self.out.write(line + "\n")
            self.out.flush()

    @property
    def user(self) -> LocalUser:
        if self.current is None:
            raise RuntimeError("no user yet: call switch(name) first")
        return self.current


def notify_url_for(bot_url: str) -> str:
    """The NotifyFunction next to the messages endpoint: .../api/messages -> .../api/notify."""
    parts = urlsplit(bot_url)
    path = parts.path.rsplit("/", 1)[0] + "/notify"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def curl_lines(notify_url: str, conversation_id: str) -> list[str]:
    """Two commands to try proactive messages on the current user: a notification and the survey."""
    to = {"conversation": conversation_id}
    note = {"text": "Hello, this is a notification", "locale": "en-US", "to": to}
    survey = {"dialog": "survey", "to": to}
    return [f"curl -X POST {notify_url} -H 'Content-Type: application/json' -d '{_json(body)}'"
            for body in (note, survey)]


def group_curl_line(notify_url: str, group_id: str, name: str) -> str:
    """The command that broadcasts to a Graph group's members."""
    body = {"to": {"group": group_id}, "text": f"Hello {name}, this is a broadcast to your group"}
    return f"curl -X POST {notify_url} -H 'Content-Type: application/json' -d '{_json(body)}'"


def parse_group(argument: str) -> tuple[str, list[str]]:
    """`NAME USER [USER...]` -> (name, users without repeats); ValueError saying what is wrong."""
    words = argument.split()
    if len(words) < 2:
        raise ValueError(GROUP_USAGE)
    bad = [w for w in words if not _DIRECTORY_NAME.fullmatch(w)]
    if bad:
        raise ValueError(f"not a name: {' '.join(bad)} (letters, digits, '.', '_' and '-'); {GROUP_USAGE}")
    return words[0], list(dict.fromkeys(words[1:]))


def make_group(graph: GraphStub, name: str, users: list[str]) -> str:
    """Users who never wrote to the bot, and a group NAME of them, in the Graph stub; returns the group's id.
    Ids are stable (the same names give the same ids in every run); a user or group made before is reused."""
    member_ids = []
    for user in users:
        user_id = aad_id(user)
        if graph.user(user_id) is None:
            graph.add_user(user_id, upn=f"{user}@{DIRECTORY_DOMAIN}", display_name=user)
        member_ids.append(user_id)
    return graph.add_group(aad_id(name, "group"), display_name=name, members=member_ids)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Repl:
    """The terminal loop: one line at a time, commands start with '/'."""

    def __init__(self, channel: LocalChannel, notify_url: str, graph: GraphStub | None = None) -> None:
        self.channel = channel
        self.notify_url = notify_url
        self.graph = graph

    def show_curl(self) -> None:
        user = self.channel.user
        self.channel.print(f"Try a proactive message to {user.name} (conversation {user.conversation_id}):")
        for line in curl_lines(self.notify_url, user.conversation_id):
            self.channel.print("  " + line)

    def group(self, argument: str) -> None:
        """`/group NAME USER...`: the group in the Graph stub, its id and the curl line that broadcasts to it."""
        if self.graph is None:
            self.channel.print("(no Graph stub in this chat: `python -m devhost.run` starts one)")
            return
        try:
            name, users = parse_group(argument)
        except ValueError as exc:
            self.channel.print(f"({exc})")
            return
        group_id = make_group(self.graph, name, users)
        for user in users:
            try:  # where the bot will write to them once it is installed for them
                self.channel.name_conversation(self.graph.chat_id_for(aad_id(user)), user)
            except ValueError:  # no app, or several, in the stub's catalog: the chat shows the raw id
                break
        self.channel.print(f"(group {name}: id {group_id}; members {', '.join(users)}, who never wrote to the bot)")
        self.channel.print(f"Broadcast to {name} (the bot is installed for each member, then writes to them):")
        self.channel.print("  " + group_curl_line(self.notify_url, group_id, name))

    def handle(self, line: str) -> bool:
        """Act on one line; False means quit."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/"):
            self.channel.say(line)
            return True
        command, _, argument = line.partition(" ")
        if command == "/quit":
            return False
        if command == "/user" and argument.strip():
            is_new = argument.strip() not in self.channel.users
            user = self.channel.switch(argument.strip())
            self.channel.print(f"(you are {user.name}{', new' if is_new else ''}; conversation {user.conversation_id})")
            if is_new:
                self.show_curl()
        elif command == "/users":
            for user in self.channel.users.values():
                mark = "*" if user is self.channel.current else " "
                self.channel.print(f" {mark} {user.name}  conversation {user.conversation_id}")
        elif command == "/curl":
            self.show_curl()
        elif command == "/group":
            self.group(argument)
        elif command == "/click" and argument.strip().isdigit():
            self.channel.click(int(argument.strip()))
        elif command == "/read":
            self.channel.read()
        else:
            self.channel.print(HELP)
        return True

    def run(self, lines: Iterable[str] | None = None) -> None:
        """Read from `lines` (default: the terminal) until /quit or end of input."""
        source = iter(lines) if lines is not None else _terminal_lines(self)
        for line in source:
            if not self.handle(line):
                return


def _terminal_lines(repl: Repl) -> Iterable[str]:
    while True:
        try:
            yield input(f"{repl.channel.user.name}> ")
        except EOFError:
            return


def load_signer(spec: str, service_url: str, channel_id: str) -> Signer:
    """`module:factory` names `factory(service_url=..., channel_id=...) -> Signer` (e.g. one built on stubs.openid)."""
    module_name, _, attribute = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute or "channel_signer")
    return factory(service_url=service_url, channel_id=channel_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost.channel", description=__doc__.splitlines()[0])
    parser.add_argument("--bot", default="http://127.0.0.1:7071/api/messages", help="the bot's messaging endpoint")
    parser.add_argument("--notify", default=None, help="the notify endpoint for the printed curl lines")
    parser.add_argument("--user", default="you", help="the first user's name")
    parser.add_argument("--signer", default=os.environ.get("DEVHOST_CHANNEL_SIGNER"),
                        help="module:factory returning a signer for activities (default: no Authorization header)")
    args = parser.parse_args(argv)
    with LocalChannel(args.bot) as channel:
        if args.signer:
            channel.sign = load_signer(args.signer, channel.service_url, channel.channel_id)
        print(f"Local channel: serviceUrl {channel.service_url}, bot {args.bot}. {HELP}", flush=True)
        repl = Repl(channel, args.notify or notify_url_for(args.bot))
        repl.handle(f"/user {args.user}")
        try:
            repl.run()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
