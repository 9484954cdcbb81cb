from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from ..annotate.config import AnnotateServerConfig
from ..errors import UsageError, missing_extra
from ..settings import SettingsError, build_from_options, click_options, given, in_flags

db_option = click.option(
    "--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="Annotation database (SQLite); created by serve/import when missing.",
)
id_prefix_option = click.option(
    "--id-prefix", default="", help="Prepend this to every item id (to import files whose "
    "ids would clash, e.g. two files without ids).")


@click.group("annotate")
def command() -> None:
    """Annotate pairs along the sequential taxonomy; measure agreement; export labels."""


@command.command("import")
@db_option
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="JSON list or JSONL of {context, response[, label, id]}.")
@id_prefix_option
@click.option("--annotator", default=None,
              help="Record the file's labels as this annotator's answers (labels made in "
                   "another tool or an earlier round) instead of as gold labels.")
def import_(db_path: Path, data_path: Path, id_prefix: str, annotator: str | None) -> None:
    """Add items to the database; their labels, if any, are kept as gold for auditing."""
    from ..annotate.store import import_annotations, import_file, open_store

    if annotator is None:
        result = import_file(open_store(db_path), data_path, id_prefix)
        click.echo(f"{db_path}: {result}")
        return
    result, count = import_annotations(open_store(db_path), data_path, annotator, id_prefix)
    click.echo(f"{db_path}: {result}; {count} labels recorded as answers of {annotator}")


@command.command("serve")
@db_option
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Import this file first (items already present are kept).")
@id_prefix_option
@click_options(AnnotateServerConfig, "host", "port", "token_env", "break_every")
def serve(db_path: Path, data_path: Path | None, id_prefix: str, **options: Any) -> None:
    """Run the annotation web app until Ctrl-C."""
    try:
        from ..annotate.app import create_server
    except ModuleNotFoundError as exc:  # starlette / uvicorn: the annotate extra
        if not exc.name or exc.name.startswith("mhsafety"):
            raise
        raise missing_extra(exc.name, "annotate") from None
    from ..annotate.store import import_file, open_store

    config = build_from_options(AnnotateServerConfig, given(options), "annotate serve")
    token = None
    if config.token_env is not None:
        token = os.environ.get(config.token_env)
        if not token:
            raise UsageError(f"--token-env {config.token_env}: the environment variable is not "
                             "set or empty")
    store = open_store(db_path)
    if data_path is not None:
        click.echo(f"{db_path}: {import_file(store, data_path, id_prefix)}", err=True)
    if store.item_count() == 0:
        raise UsageError(f"{db_path} holds no items; pass --data FILE or run "
                         "`mhsafety annotate import` first")
    try:
        server = create_server(store, config, token=token)
    except SettingsError as exc:
        raise in_flags(exc, flags={"token": "one with --token-env VAR"}) from None
    click.echo(f"annotation app on {server.url} ({store.item_count()} items, database "
               f"{db_path}); Ctrl-C stops it", err=True)
    click.echo(server.url)  # machine-readable line on stdout (port 0 picks the port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # uvicorn has already finished the requests in flight
    finally:
        server.server_close()
    click.echo("stopped; every acknowledged answer is in the database", err=True)


@command.command("progress")
@db_option
def progress(db_path: Path) -> None:
    """Items labelled and skipped per annotator."""
    from ..annotate.store import open_store

    store = open_store(db_path, create=False)
    rows = store.progress()
    if not rows:
        click.echo(f"{store.item_count()} items, no annotators yet")
    for p in rows:
        click.echo(f"{p.annotator}: {p.labelled} / {p.total} labelled, {p.skipped} skipped")


@command.command("agreement")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def agreement(db_path: Path, as_json: bool) -> None:
    """Cohen's kappa per pair, Fleiss' kappa and Krippendorff's alpha, per node, vs gold."""
    from ..annotate.agreement import agreement_report, format_report
    from ..annotate.store import open_store

    report = agreement_report(open_store(db_path, create=False))
    click.echo(json.dumps(report, indent=2, ensure_ascii=False) if as_json
               else format_report(report))


@command.command("export")
@db_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output dataset: .json for the upstream list format, anything else JSONL.")
@click.option("--ties", type=click.Choice(["omit", "unlabelled"]), default="omit",
              show_default=True,
              help="Tied items: leave out, or write without a label for another round.")
@click.option("--min-annotators", type=click.IntRange(1), default=1, show_default=True,
              help="Leave out items with fewer annotations than this.")
def export(db_path: Path, out: Path, ties: str, min_annotators: int) -> None:
    """Write the majority labels in the dataset format (for train, benchmark, evaluate)."""
    from ..annotate.agreement import export_adjudicated
    from ..annotate.store import open_store

    summary = export_adjudicated(open_store(db_path, create=False), out, ties,  # type: ignore[arg-type]
                                 min_annotators)
    counts = ", ".join(f"{name} {n}" for name, n in summary["labels"].items())
    click.echo(f"wrote {summary['written']} items to {out} ({counts})")
    if summary["tied"]:
        verb = "left out" if ties == "omit" else "written without a label"
        shown = ", ".join(summary["tied"][:20]) + (" ..." if len(summary["tied"]) > 20 else "")
        click.echo(f"tied items {verb} ({len(summary['tied'])}): {shown}", err=True)
    if summary["too_few"]:
        why = ("not annotated yet" if min_annotators == 1
               else f"with fewer than {min_annotators} annotations")
        click.echo(f"left out {len(summary['too_few'])} items {why}", err=True)
