"""Config registry: a prefix loaded as one consistent snapshot, then kept current.

    cfg = ConfigRegistry(client, "config/app/", model=AppConfig, on_change=print)
    await cfg.start()
    cfg.values["workers"]   # b"4"
    cfg.typed.workers       # 4, validated by pydantic

Loading at one revision then watching from revision + 1 means no update is missed or
applied twice, and every state the callback sees existed in the store at once.
An update the model rejects keeps the last valid `typed` and reports the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from raftkv.recipes.view import PrefixView

if TYPE_CHECKING:
    from raftkv.client.aio import AsyncClient

M = TypeVar("M", bound=BaseModel)


class ConfigRegistry(Generic[M]):
    def __init__(
        self,
        client: AsyncClient,
        prefix: str,
        model: type[M] | None = None,
        on_change: Callable[[ConfigRegistry[M]], Any] | None = None,
    ) -> None:
        self.view = PrefixView(client, prefix)
        self.model = model
        self.on_change = on_change
        self.typed: M | None = None
        self.error: ValidationError | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    @property
    def values(self) -> dict[str, bytes]:
        return self.view.relative()

    @property
    def revision(self) -> int:
        return self.view.revision

    def as_text(self) -> dict[str, str]:
        return {k: v.decode("utf-8", "replace") for k, v in self.values.items()}

    async def start(self) -> ConfigRegistry[M]:
        """Load the snapshot (so values are ready on return), then follow changes."""
        await self.view.load()
        self._validate()
        self._task = asyncio.create_task(self._follow())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> ConfigRegistry[M]:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for_revision(self, revision: int, timeout: float = 10) -> None:
        """Until the registry reflects at least `revision` (e.g. of one's own write)."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.view.revision >= revision), timeout
            )

    def _validate(self) -> None:
        if self.model is None:
            return
        try:
            self.typed = self.model.model_validate(self.as_text())
            self.error = None
        except ValidationError as e:
            self.error = e

    async def _follow(self) -> None:
        updates = self.view.updates()
        async with contextlib.aclosing(updates) as it:
            first = True
            async for _rev in it:
                if first:  # the snapshot start() already loaded
                    first = False
                    continue
                self._validate()
                if self.on_change is not None:
                    res = self.on_change(self)
                    if inspect.isawaitable(res):
                        await res
                async with self._changed:
                    self._changed.notify_all()
