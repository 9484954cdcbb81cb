"""The ``mhsafety`` command line: a thin layer over the library.

Each command lives in ``cli/cmd_<name>.py`` and exposes ``command`` (a click command or
group); commands are discovered from the file names and imported only when used or listed,
so heavy libraries never load for ``mhsafety taxonomy``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence

import click

from ..errors import MhsafetyError

_STATE: dict[str, object] = {"verbose": False, "argv": ["mhsafety"]}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        names = [m.name[4:].replace("_", "-") for m in pkgutil.iter_modules(__path__)
                 if m.name.startswith("cmd_")]
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.list_commands(ctx):
            return None
        module = importlib.import_module(f"{__name__}.cmd_{name.replace('-', '_')}")
        return module.command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100})
@click.option("--verbose", is_flag=True, help="Show full tracebacks on errors (any position).")
@click.version_option(package_name="mhsafety")
def cli(verbose: bool) -> None:
    """Dialogue safety for mental-health support: the taxonomy, the benchmark and its systems."""
    if verbose:
        _STATE["verbose"] = True


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    _STATE["argv"] = ["mhsafety", *args]  # the command line as data, for provenance
    # --verbose is accepted anywhere on the line, not just before the command name.
    if "--verbose" in args:
        _STATE["verbose"] = True
        args = [a for a in args if a != "--verbose"]
    verbose = _STATE["verbose"] or os.environ.get("MHSAFETY_VERBOSE") == "1"
    try:
        rv = cli.main(args=args, prog_name="mhsafety", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("mhsafety: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MhsafetyError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"mhsafety: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("mhsafety: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last resort: one line unless --verbose
        if verbose:
            traceback.print_exc()
        click.echo(f"mhsafety: internal error: {type(exc).__name__}: {exc} "
                   "(rerun with --verbose for the traceback)", err=True)
        sys.exit(1)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
