"""The app: the composition root (services: settings, clients and stores built once per process) and the operators' CLI.

May import: every package. Lower packages name `Services` only in annotations (under TYPE_CHECKING).
"""
