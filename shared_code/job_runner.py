"""Running a proactive job taken from the queue: validate, send or start a dialog, or poison."""

from __future__ import annotations

import logging

from shared_code import jobs
from shared_code.errors import AppRejected, BadInput, NotFound, RecipientGone
from shared_code.jobs import Job, JobKind
from shared_code.proactive import send_proactive_message
from shared_code.services import Services

log = logging.getLogger(__name__)


def handle_queue_message(body: bytes, services: Services) -> None:
    """Run one queue message. Raises only for what a retry can fix (the host retries, then poisons);
    a message that can never succeed goes to the poison queue at once, with the reason."""
    try:
        job = jobs.parse_job(jobs.decode_message(body))
    except BadInput as bad:
        log.warning("job refused, moved to poison: %s", bad.message)
        jobs.send_to_poison(body, bad.message, services)
        return
    try:
        run_job(job, services)
    except (BadInput, NotFound, AppRejected) as final:
        log.warning("job %s cannot succeed, moved to poison: %s", job.id, final.message)
        jobs.send_to_poison(body, f"{final.code}: {final.message}", services)
    except RecipientGone as gone:
        log.info("job %s: recipient gone (%s), address deactivated", job.id, gone.code)


def run_job(job: Job, services: Services) -> None:
    if not job.target.is_single:
        raise BadInput(f"jobs for many recipients ({job.target.kind.value}) are not handled by this version")
    address = services.addresses.get(job.target.value)
    if address is None:
        raise NotFound(f"no saved address for conversation {job.target.value!r}")
    if job.kind is JobKind.MESSAGE:
        send_proactive_message(address, services, text=job.text, locale=job.locale)
    else:
        from shared_code.dialogs import begin_dialog

        begin_dialog(address, job.dialog, job.id, services)


