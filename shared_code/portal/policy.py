"""What an author's roles allow: Admins everything; Authors the audiences `PortalAuthorAudiences` names, and
changes (edit, recall, cancel) to the notifications they created; anyone else only to see who they are.
A refusal is a Forbidden (403) raised before anything is created or changed."""

from __future__ import annotations

from typing import Any

from shared_code.notifications.jobs import parse_job
from shared_code.plumbing.errors import AppError, Forbidden
from shared_code.plumbing.settings import Settings
from shared_code.portal.signin import Author, Role


def allowed_audiences(author: Author, settings: Settings) -> tuple[str, ...] | None:
    """The audiences this author may send to; None: every audience (an Admin)."""
    if Role.ADMINS in author.roles:
        return None
    if Role.AUTHORS in author.roles:
        return settings.portal_author_audiences
    return ()


def check_reader(author: Author) -> None:
    if not author.roles:
        raise Forbidden(f"{author.name} has neither the Authors nor the Admins role of this app: ask an admin")


def check_send(author: Author, data: dict[str, Any], settings: Settings) -> None:
    """Forbidden when the request's audience is outside the author's role (a malformed request is left for
    the API to answer with its own 400)."""
    check_reader(author)
    allowed = allowed_audiences(author, settings)
    if allowed is None:
        return
    try:
        job = parse_job({k: v for k, v in data.items() if k != "dryRun"}, require_version=False)
    except AppError:
        return
    kind = job.target.kind.value
    if kind not in allowed:
        raise Forbidden(f"the Authors role may not send to the audience '{kind}'; "
                        f"it may send to: {', '.join(allowed) or 'nothing'}. Ask an admin.")


def check_change(author: Author, created_by: str | None) -> None:
    """Edit, recall and cancel: an Admin's, or the Author's who created it."""
    check_reader(author)
    if Role.ADMINS in author.roles:
        return
    if created_by is None or created_by != author.id:
        raise Forbidden("an Author may change only the notifications they created; ask an admin")


__all__ = ["allowed_audiences", "check_change", "check_reader", "check_send"]
