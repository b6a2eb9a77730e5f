"""The conversation: a turn at /api/messages, the dialog engine and its dialogs (main, survey), dialog state, proactive sends to one saved address.

May import: storage, protocol, plumbing.
"""
