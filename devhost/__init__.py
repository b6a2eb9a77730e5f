"""Local development: the storage emulator, a Functions host and a chat channel. Never deployed."""
