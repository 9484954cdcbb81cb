"""``mhsafety export-task``: the benchmark as another harness's task."""

from __future__ import annotations

from pathlib import Path

import click

from ..judge.parse import PARSERS
from ..judge.settings import N_SHOTS, OUTPUTS
from ..settings import SettingsError, in_flags
from .options import allow_overlap_option, data_option, force_option


@click.group("export-task")
def command() -> None:
    """Write the benchmark as a task of another evaluation harness."""


@command.command("lm-eval")
@data_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Task folder to write (pass it to lm_eval --include_path); a rerun "
                   "replaces its own, any other non-empty folder is refused (see --force).")
@click.option("--shots", type=click.Choice(["0", str(N_SHOTS)]), default="0", show_default=True,
              help=f"0 = zero-shot; {N_SHOTS} = one example per label from --train (one draw).")
@click.option("--train", "train_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Labelled file the few-shot examples come from.")
@click.option("--parser", type=click.Choice(list(PARSERS)), default=None,
              help="How answers become labels [default: the judge's].")
@click.option("--output", type=click.Choice(list(OUTPUTS)), default=None,
              help="Answer format the prompt asks for [default: the judge's, text].")
@click.option("--seed", type=int, default=None, help="Seed of the few-shot draw "
                                                     "[default: the judge's].")
@click.option("--template", "template_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Prompt template file replacing the built-in one.")
@allow_overlap_option
@force_option
def lm_eval(data_path: Path | None, out: Path, shots: str, train_path: Path | None,
            parser: str | None, output: str | None, seed: int | None,
            template_path: Path | None, allow_overlap: bool, force: bool) -> None:
    """An lm-evaluation-harness task folder (YAML + utils.py) reading --data in place.

    --train items that are also in --data (copies changed in no meaning included) are
    refused unless --allow-overlap (an item is then never its own example, and the rows read
    back are marked). Shots, protocol and overlap go into the task's metadata, so
    `mhsafety evaluate` labels its samples right.
    """
    from ..data import resolve_data
    from ..integrations.lmeval import TASK_NAME, LmEvalSettings, export_task
    from ..io import atomic_directory, prepare_output_dir

    prepare_output_dir(out, command="export-task lm-eval", force=force)

    settings = LmEvalSettings(data=str(resolve_data(data_path)), shots=int(shots),
                              train=str(train_path) if train_path else None, parser=parser,
                              output=output, seed=seed,
                              template=str(template_path) if template_path else None,
                              allow_overlap=allow_overlap)
    try:
        with atomic_directory(out, "export-task lm-eval") as tmp:
            export_task(tmp, settings)
    except SettingsError as exc:
        raise in_flags(exc, flags={"train": "--train FILE"}) from None
    folder = out
    click.echo(f"wrote {folder}; run it with: lm_eval --include_path {folder} --tasks "
               f"{TASK_NAME} --model local-chat-completions --apply_chat_template "
               "--model_args model=NAME,base_url=URL/chat/completions")
