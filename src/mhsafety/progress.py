"""Progress bars on stderr, shown only on a terminal so logs and tests stay clean."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "",
             unit: str = "it", **kwargs: Any) -> Iterator[T]:
    from tqdm.auto import tqdm

    # disable=None turns the bar off when stderr is not a terminal.
    yield from tqdm(iterable, total=total, desc=desc, unit=unit, disable=None,
                    dynamic_ncols=True, **kwargs)


def progress_bar(total: int | None = None, desc: str = "", unit: str = "it", **kwargs: Any):
    """A manually advanced bar (``bar.update(n)``), for concurrent work."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None, dynamic_ncols=True, **kwargs)
