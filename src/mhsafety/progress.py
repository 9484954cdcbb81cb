"""Progress bars on stderr, shown only on a terminal so logs and tests stay clean."""

from __future__ import annotations

import sys
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

    kwargs.setdefault("disable", None)
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, **kwargs)


def note(line: str) -> None:
    """A progress line on stderr, on a terminal and in a pipe alike (a log of a long run
    needs a line per step, say per epoch); printed above any bar without breaking it."""
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)
