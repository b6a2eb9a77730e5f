"""Plumbing: settings, errors, input limits, the HTTP edge, the outbound HTTP session, telemetry, the NCRONTAB parser. Knows nothing of bots.

May import: nothing of ours.
"""
