"""Notifications: reaching many. At the top, the job format (`jobs`), what the app must provide (`ports`), the
notify API (`api`) and the queue runner (`queue_runner`); the work itself in sub-packages, lowest first:
`records` (what a notification leaves in Table Storage), `audience` (who it reaches), `sending` (reaching
them exactly once within the limits), `after_send` (edits, recall, acknowledgements, reports) and `upkeep`
(the timers' work).

May import: conversation, storage, protocol, plumbing. Inside, a sub-package imports only those before it
in that list, and `jobs` and `ports`; only `api` and `queue_runner` import them all.
"""
