"""Storage: Table Storage helpers and keys, queue messages, and the address store (the saved conversation references).

May import: protocol, plumbing.
"""
