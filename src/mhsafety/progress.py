"""Progress bars on stderr, shown only on a terminal so logs and tests stay clean."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
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


class Steps:
    """Progress of a counted piece of work: a bar on a terminal, one line per step when
    stderr is piped (logs then say how far a long run got), nothing when ``quiet``.

    ``update(info)`` advances by one step; ``info`` (a score, a loss) is shown with it.
    """

    def __init__(self, total: int, desc: str, unit: str = "step", quiet: bool = False,
                 stream: Any = None) -> None:
        import sys

        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar = progress_bar(total=total, desc=desc, unit=unit, file=self.stream) \
            if tty and not quiet else None

    def update(self, info: str = "", n: int = 1) -> None:
        self.done += n
        if self.quiet:
            return
        if self._bar is not None:
            if info:
                self._bar.set_postfix_str(info, refresh=False)
            self._bar.update(n)
            return
        tail = f" ({info})" if info else ""
        print(f"{self.desc}: {self.unit} {self.done}/{self.total}{tail}", file=self.stream,
              flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def step_printer(desc: str, unit: str = "step", quiet: bool = False
                 ) -> Callable[[int, int, str], None]:
    """An ``on_progress(done, total, info)`` callback over :class:`Steps`: a bar on a
    terminal, a line per step when piped; a new bar when ``total`` changes or ``done``
    goes back (a new piece of work)."""
    state: dict[str, Any] = {}

    def report(done: int, total: int, info: str) -> None:
        steps = state.get("steps")
        if steps is None or steps.total != total or done < steps.done:
            if steps is not None:
                steps.close()
            steps = state["steps"] = Steps(total, desc, unit, quiet=quiet)
        steps.update(info, n=done - steps.done)
        if done >= total:
            steps.close()

    return report
