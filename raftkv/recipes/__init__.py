"""Coordination recipes built only on the public client API."""

from raftkv.recipes.config import ConfigRegistry
from raftkv.recipes.election import Election
from raftkv.recipes.lock import Lock
from raftkv.recipes.registry import Registration, instances, register, watch_instances
from raftkv.recipes.view import PrefixView

__all__ = [
    "ConfigRegistry",
    "Election",
    "Lock",
    "PrefixView",
    "Registration",
    "instances",
    "register",
    "watch_instances",
]
