"""Registries: components register under a name with a decorator (as CompressAI's ``register_model``), configs
validate names against them, and builders look them up — no if-chains, no hand-kept name lists.

    LIKELIHOODS = Registry("likelihood")

    @LIKELIHOODS.register("bernoulli")
    class Bernoulli(Likelihood): ...

    LIKELIHOODS.get("bernoulli")   # → the class;  LIKELIHOODS.names() → ("bernoulli", …)
"""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from vaekit.errors import VaekitError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → component (a class or a factory). ``register`` is a decorator; ``get`` refuses unknown names with the
    list of known ones; ``names`` lists them in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered ({self._items[name]!r})")
            self._items[name] = obj
            return obj
        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise VaekitError(f"{self.kind} {name!r} is not one of {list(self._items)}") from None

    def check(self, name: Any) -> str:
        """``name`` if it is registered, else a one-line VaekitError listing the known names."""
        self.get(name)
        return name

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._items)})"
