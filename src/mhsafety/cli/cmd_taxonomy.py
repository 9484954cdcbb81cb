from __future__ import annotations

import json

import click

from .. import taxonomy


@click.command("taxonomy")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def command(as_json: bool) -> None:
    """Print the 8 categories and the 4 nodes of the sequential framework."""
    if as_json:
        click.echo(json.dumps(taxonomy.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(taxonomy.render_tree())
