"""Notifications: the job format, the notify API, fan-out, delivery and its ledger, rate limits, scheduling, retention, the queue runner, timer surveys.

May import: conversation, storage, protocol, plumbing.
"""
