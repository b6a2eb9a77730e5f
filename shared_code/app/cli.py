"""Operators' command line: queue a notification, then show its progress until it is done.

    python -m shared_code.app.cli --all "Maintenance tonight at 22:00"
    python -m shared_code.app.cli --channel msteams --locale de-DE "Wartung heute Nacht"
    python -m shared_code.app.cli --user 29:1abc --dialog survey
    python -m shared_code.app.cli --all --ack "Got it" "Please read the new travel policy"
    python -m shared_code.app.cli report release-42 -o release-42.csv     (one row per recipient)
    python -m shared_code.app.cli report --survey survey-20261125T090000Z  (one row per answer)
    python -m shared_code.app.cli --team-channel "19:abc@thread.tacv2" "Release 42 is out"
    python -m shared_code.app.cli edit release-42 "Version 42 is out (corrected)"  (every delivered message)
    python -m shared_code.app.cli edit release-42 --content new.json   (text, attachments, suggestedActions...)
    python -m shared_code.app.cli recall release-42                    (stop it and delete what was delivered)

Settings come from the environment, else from local.settings.json's "Values".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any


def load_local_settings(path: Path = Path("local.settings.json")) -> None:
    """Fill unset app settings from local.settings.json, as `func start` would."""
    if not path.is_file():
        return
    values = json.loads(path.read_text()).get("Values") or {}
    for key, value in values.items():
        os.environ.setdefault(key, str(value))


# CLI option (argparse attribute) -> the job's `to` key.
AUDIENCES = {"conversation": "conversation", "user": "user", "channel": "channelId", "team": "team",
             "team_channel": "teamChannel"}


def build_job(args: argparse.Namespace) -> dict[str, Any]:
    if args.all:
        to: Any = "all"
    elif args.group or args.users:
        to = {"group": args.group} if args.group else {"users": read_people(args.users)}
        if args.in_tenant:
            to["tenant"] = args.in_tenant
    elif args.tenant:
        to = {"tenant": args.tenant, **({"includeGuests": True} if args.include_guests else {})}
    else:
        # One of the mutually exclusive options is set: its wire key names the audience.
        [(kind, value)] = [(key, getattr(args, attr)) for attr, key in AUDIENCES.items() if getattr(args, attr)]
        to = {kind: value}
    job: dict[str, Any] = {"v": 1, "id": args.id or f"cli-{uuid.uuid4().hex[:12]}", "to": to}
    if args.dialog:
        job.update(kind="dialog", dialog=args.dialog)
    else:
        job.update(kind="message", text=args.text)
    if args.locale:
        job["locale"] = args.locale
    if getattr(args, "ack", None):
        job["ack"] = {"title": args.ack}
    return job


def read_people(path: Path) -> list[str]:
    """One person a line (blank lines and `#` comments skipped)."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:
        return report(argv[1:])
    if argv[:1] in (["edit"], ["recall"]):
        return revise(argv[0], argv[1:])
    if argv[:1] == ["index-people"]:
        return index_people(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m shared_code.app.cli", description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--all", action="store_true", help="every active saved address")
    target.add_argument("--conversation", metavar="ID")
    target.add_argument("--user", metavar="ID")
    target.add_argument("--channel", "--channel-id", dest="channel", metavar="ID",
                        help="every active address of one Bot Framework channel, e.g. msteams (not a Teams channel)")
    target.add_argument("--team", metavar="TEAM_ID", help="every member of a Teams team (GET /api/teams lists ids)")
    target.add_argument("--team-channel", metavar="TEAM_ID", help="one post in a Teams team's root channel")
    target.add_argument("--group", metavar="OBJECT_ID", help="every user of an Entra group, nested groups included")
    target.add_argument("--users", metavar="FILE", type=Path,
                        help="people, one object id or user principal name a line (up to 10,000)")
    target.add_argument("--tenant", metavar="TENANT_ID", help="every enabled member of the tenant")
    parser.add_argument("--include-guests", action="store_true", help="with --tenant: guests too")
    parser.add_argument("--in-tenant", metavar="TENANT_ID",
                        help="with --group or --users: the tenant (default: MicrosoftAppTenantId)")
    parser.add_argument("text", nargs="?", default="", help="the message (not with --dialog)")
    parser.add_argument("--dialog", choices=["survey"])
    parser.add_argument("--locale")
    parser.add_argument("--id", help="idempotency key: the same id twice is one notification")
    parser.add_argument("--ack", metavar="TITLE", help="add an acknowledge button with this title")
    parser.add_argument("--no-wait", action="store_true", help="queue it and exit")
    parser.add_argument("--timeout", type=float, default=3600.0, help="stop watching after this many seconds")
    args = parser.parse_args(argv)
    if bool(args.text) == bool(args.dialog):
        parser.error("give either a text or --dialog")

    load_local_settings()
    from shared_code.app import services
    from shared_code.notifications import api, jobs
    from shared_code.notifications.audience import fanout
    from shared_code.plumbing.errors import AppError

    app = services.get()
    job = build_job(args)
    try:
        # A team that is unknown or uninstalled is said here, not left on the queue.
        parsed = api.resolve_team_target(jobs.parse_job(job), app)
        if parsed.target.people:  # a list can outgrow a queue message: the notification is stored here
            fanout.start(jobs.check_storable(parsed), app)
        else:
            jobs.enqueue(job, app)
    except AppError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    print(f"queued notification {job['id']} on {app.settings.jobs_queue}")
    if args.no_wait:
        return 0
    return watch(job["id"], app, timeout=args.timeout)


def index_people(argv: list[str]) -> int:
    """`index-people`: index every saved personal address by its person's Entra object id (the People table),
    so organisation broadcasts find the chats saved before that table existed with no Graph call. Safe to repeat."""
    argparse.ArgumentParser(prog="python -m shared_code.app.cli index-people",
                            description=index_people.__doc__.splitlines()[0]).parse_args(argv)
    load_local_settings()
    from shared_code.app import services

    app = services.get()
    indexed = app.addresses.index_people()
    print(f"indexed {indexed} personal chats by object id")
    return 0


def report(argv: list[str]) -> int:
    """`report <notification id>` or `report --survey <run id>`: the CSV, to a file or standard output."""
    parser = argparse.ArgumentParser(prog="python -m shared_code.app.cli report",
                                     description="a notification's per-recipient report, or a survey run's answers, as CSV")
    parser.add_argument("id", help="the notification id (or, with --survey, the survey run id)")
    parser.add_argument("--survey", action="store_true", help="the id is a survey run: one row per answer")
    parser.add_argument("-o", "--output", type=Path, help="write the CSV here (default: standard output)")
    args = parser.parse_args(argv)

    load_local_settings()
    from shared_code.app import services
    from shared_code.notifications.after_send import reports
    from shared_code.plumbing.errors import AppError

    app = services.get()
    try:
        body = (reports.survey_answers_report if args.survey else reports.notification_report)(args.id, app)
    except AppError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        args.output.write_bytes(body)
        print(f"wrote {args.output} ({len(body)} bytes)", file=sys.stderr)
    return 0


def revise(command: str, argv: list[str]) -> int:
    """`edit <id> TEXT` (or `--content FILE`, a JSON object of the new content) and `recall <id>`: checked and
    stored now (an unknown notification, a recalled one or bad content is said at once); the queue does the rest."""
    parser = argparse.ArgumentParser(prog=f"python -m shared_code.app.cli {command}",
                                     description="give a notification new content everywhere" if command == "edit"
                                     else "stop a notification and delete every message it delivered")
    parser.add_argument("id", help="the notification id")
    if command == "edit":
        parser.add_argument("text", nargs="?", default="", help="the new text")
        parser.add_argument("--content", type=Path, metavar="FILE",
                            help="a JSON object with text, attachments, suggestedActions, defaultLocale")
    args = parser.parse_args(argv)
    changes: dict[str, Any] = {}
    if command == "edit":
        if bool(args.text) == bool(args.content):
            parser.error("give either a text or --content")
        changes = {"text": args.text} if args.text else json.loads(args.content.read_text())
        if not isinstance(changes, dict):
            parser.error("--content must hold a JSON object")

    load_local_settings()
    from shared_code.app import services
    from shared_code.notifications import api
    from shared_code.plumbing.errors import AppError

    app = services.get()
    try:
        answer = api.edit(args.id, changes, app) if command == "edit" else api.recall(args.id, app)
    except AppError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    done = "edited: version {version}".format(**answer.body) if command == "edit" else "recalled"
    print(f"notification {args.id} {done}; {answer.body['pages']} pages queued for the update")
    return 0


def watch(notification_id: str, app: Any, *, timeout: float, interval: float = 1.0) -> int:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        status = app.notifications.status(notification_id)
        line = "waiting for the queue function to pick it up..."
        if status is not None:
            s = status.to_json()
            line = (f"{s['state']}: {s['sent']}/{s['total']} sent, {s['failed']} failed, "
                    f"{s['skipped']['inactive']} inactive, {s['skipped']['gone']} gone, {s['pending']} pending")
            if s["state"] != "running":
                print(line)
                for error in s["errors"]:
                    print(f"  e.g. {error['code']}: {error['message']}")
                if s.get("stopReason"):
                    print(f"  stopped: {s['stopReason']}")
                return 0 if s["state"] == "done" else 1
        if line != last:
            print(line, flush=True)
            last = line
        time.sleep(interval)
    print("still running; check again with GET /api/notify/" + notification_id, file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
