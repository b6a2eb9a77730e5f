"""The Bot Framework protocol: activities and conversation references, message content, the connector client, inbound JWT and outbound tokens.

May import: plumbing. Never storage: what the protocol says does not depend on where we keep it.
"""
