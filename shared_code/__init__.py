"""The bot and its proactive messages, in layers: plumbing < protocol < storage < conversation < notifications < app.

A package imports only from the packages below it (tests/test_architecture.py enforces it); ARCHITECTURE.md explains each.
"""
