"""``mhsafety judge``: label items with an LLM over any OpenAI-compatible API."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import data_option


@click.command("judge")
@data_option
@click.option("--model", required=True, help="Model name as the server knows it.")
@click.option("--base-url", required=True, envvar="MHSAFETY_JUDGE_BASE_URL",
              help="OpenAI-compatible API root, e.g. https://api.openai.com/v1 or "
                   "http://127.0.0.1:8000/v1 (env: MHSAFETY_JUDGE_BASE_URL).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder; rerunning with the same folder resumes.")
@click.option("--shots", type=click.Choice(["0", "8"]), default="0", show_default=True,
              help="0 = zero-shot; 8 = one example per label from --train, redrawn per round.")
@click.option("--rounds", type=click.IntRange(1), default=5, show_default=True)
@click.option("--train", "train_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Labelled file to draw few-shot examples from. The judged "
                                 "item itself is never shown as its own example.")
@click.option("--template", "template_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Prompt template file replacing the built-in one "
                                 "($definitions $labels $examples $context $response).")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Seed of the few-shot draw (set once, as in the paper).")
@click.option("--max-tokens", type=click.IntRange(1), default=10, show_default=True)
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-p", type=float, default=1.0, show_default=True)
@click.option("--parser", type=click.Choice(["tolerant", "paper"]), default="tolerant",
              show_default=True, help="How answers become labels.")
@click.option("--concurrency", type=click.IntRange(1), default=8, show_default=True,
              help="Requests in flight.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, help="Seconds per request.")
@click.option("--max-attempts", type=click.IntRange(1), default=8, show_default=True,
              help="Attempts per request before the item is recorded as failed.")
@click.option("--retry-base", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Back-off base in seconds (attempt n waits up to base * 2^n, jittered).")
@click.option("--stop-after-failures", type=click.IntRange(0), default=20, show_default=True,
              help="Stop the run when this many items in a row fail (server down); 0 = never.")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Name of the environment variable holding the API key.")
@click.option("--client", type=click.Choice(["auto", "fast", "openai"]), default="auto",
              show_default=True, help="HTTP client: the openai SDK (honours proxy settings), "
                                      "the built-in fast one, or auto: SDK for https://, "
                                      "fast for http://.")
@click.option("--system-name", default=None, help="Name in tables (default: 'MODEL zero-shot').")
@click.option("--vote", is_flag=True, help="Also write a majority vote over the rounds.")
@click.option("--price-in", type=float, default=None, help="Price per million prompt tokens.")
@click.option("--price-out", type=float, default=None,
              help="Price per million completion tokens.")
@click.option("--protocol", type=click.Choice(["flat", "sequential"]), default="flat",
              show_default=True, help="flat: one question, eight labels (the paper's judge); "
                                      "sequential: the four nodes, one question each, "
                                      "stopping at the first that fires.")
@click.option("--batch", is_flag=True, help="Send the run through the server's Batch API "
                                             "(/v1/files + /v1/batches); a rerun resumes it.")
@click.option("--batch-poll", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Seconds between polls of a batch.")
@click.option("--batch-price-factor", type=click.FloatRange(min=0), default=0.5,
              show_default=True, help="A batch request's price as a share of --price-in/"
                                      "--price-out (OpenAI, Anthropic: half).")
@click.option("--batch-file-only", is_flag=True,
              help="Only write OUT/batch/requests.jsonl (runs unchanged through "
                   "`vllm run-batch`); send nothing.")
@click.option("--batch-results", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Join a batch output file (e.g. from `vllm run-batch`) into the run.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(data_path: Path | None, model: str, base_url: str, out_dir: Path, shots: str,
            rounds: int, train_path: Path | None, template_path: Path | None, seed: int,
            max_tokens: int, temperature: float, top_p: float, parser: str, concurrency: int,
            timeout: float, max_attempts: int, retry_base: float, stop_after_failures: int,
            api_key_env: str,
            client: str, system_name: str | None, vote: bool, price_in: float | None,
            price_out: float | None, protocol: str, batch: bool, batch_poll: float,
            batch_price_factor: float, batch_file_only: bool, batch_results: Path | None,
            quiet: bool) -> None:
    """Label every item with an LLM judge, zero- or few-shot, for several rounds.

    Writes prediction records per round to OUT/preds (score them with `mhsafety evaluate
    OUT`), a resumable log per round, a manifest and a summary. The API key is read from
    the environment (--api-key-env), never from the command line.
    """
    from ..data import load_examples, resolve_data
    from ..judge.prompts import load_template
    from ..judge.runner import JudgeSettings, format_batch_file, format_summary, run_judge

    data = resolve_data(data_path)
    examples = load_examples(data)
    train = load_examples(train_path) if train_path is not None else None
    settings = JudgeSettings(
        model=model, base_url=base_url, shots=int(shots), rounds=rounds, seed=seed,
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, parser=parser,
        concurrency=concurrency, timeout=timeout, max_attempts=max_attempts,
        backoff_base=retry_base, stop_after_failures=stop_after_failures,
        api_key_env=api_key_env, client=client,
        system_name=system_name, vote=vote, price_in=price_in, price_out=price_out,
        protocol=protocol, batch=batch, batch_poll=batch_poll,
        batch_price_factor=batch_price_factor)
    result = run_judge(examples, out_dir, settings, train=train,
                       template=load_template(template_path), data_source=str(data),
                       train_source=str(train_path) if train_path else None,
                       show_progress=not quiet, on_message=lambda m: click.echo(m, err=True),
                       batch_file_only=batch_file_only, batch_results=batch_results)
    if batch_file_only:
        click.echo(format_batch_file(result.summary, model))
        return
    click.echo(format_summary(result.summary))
    click.echo(f"wrote {out_dir}/preds (score with: mhsafety evaluate {out_dir})", err=True)
