"""Local stand-ins for the Bot Framework services (channel, connector, login), over real HTTP.

They behave like the real services where the app can tell the difference, and are
shared by the tests, the benchmarks and the local chat channel. Never deployed.
"""
