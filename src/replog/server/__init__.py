"""The replog server process: gRPC and HTTP APIs over one log (see ``agent``)."""

from replog.server.agent import Agent, serve
from replog.server.settings import ServerSettings, load_settings

__all__ = ["Agent", "ServerSettings", "load_settings", "serve"]
