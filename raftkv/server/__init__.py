"""The native HTTP/JSON client API (aiohttp), curl-first, under /v1/."""

from raftkv.server.app import build_app

__all__ = ["build_app"]
