"""Datasets as Hugging Face dataset folders: export with a dataset card, and read back.

``export_dataset(splits, out, fmt)`` writes ``out`` as

``hf``       ``datasets``' own on-disk form (``DatasetDict.save_to_disk``), for
             ``datasets.load_from_disk(out)``
``parquet``  ``data/<split>-00000-of-00001.parquet``, for ``datasets.load_dataset(out)``
``jsonl``    ``data/<split>.jsonl``, for ``datasets.load_dataset(out)``

each with a ``README.md`` dataset card whose YAML header names the splits, the features (the
label a ``ClassLabel`` over the eight names, in id order), the taxonomy, the citation and the
licence facts. Columns: ``id``, ``context``, ``response``, ``label``. The folder is built
under a temporary name and swapped in whole.

:func:`mhsafety.data.formats.load_examples` reads such a folder (any of the three forms)
back, so every ``--data`` option takes it: the ``test`` split, or the only split;
``DIR/<split>`` of an ``hf`` folder, or one ``.parquet`` / ``.jsonl`` file, names one split.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError, missing_extra
from ..io import atomic_directory
from ..taxonomy import CATEGORIES, LABEL_NAMES, NODES
from .examples import Example
from .formats import CARD, write_examples

FORMATS = ("hf", "parquet", "jsonl")
COLUMNS = ("id", "context", "response", "label")

# Facts about the data's origin for the card (see the benchmark's reference notes).
CITATION = """\
@inproceedings{qiu2023benchmark,
  title     = {A Benchmark for Understanding Dialogue Safety in Mental Health Support},
  author    = {Qiu, Huachuan and Zhao, Tong and Li, Anqi and Zhang, Shuai and He, Hongliang
               and Lan, Zhenzhong},
  booktitle = {Natural Language Processing and Chinese Computing (NLPCC 2023)},
  year      = {2023},
  note      = {arXiv:2307.16457}
}"""
SOURCE = "https://github.com/qiuhuachuan/DialogueSafety"
LICENCE_FACTS = (
    "- **Public test set** (800 items): published in the authors' repository "
    f"({SOURCE}), whose data carries no declared licence. Redistribution terms are "
    "therefore not granted by a licence: ask the authors before republishing it.\n"
    "- **Training set** (7,135 items): released by the authors only to researchers who "
    "sign their data-use (confidentiality) agreement. A folder holding it must not be "
    "published or shared beyond that agreement.\n"
    "- This card and the export code are mhsafety's; the category definitions are "
    "mhsafety's own wording of the paper's taxonomy."
)


def _rows(examples: Sequence[Example]) -> list[dict[str, Any]]:
    return [{"id": ex.id, "context": ex.context, "response": ex.response, "label": ex.label}
            for ex in examples]


def _features() -> Any:
    import datasets

    return datasets.Features({
        "id": datasets.Value("string"), "context": datasets.Value("string"),
        "response": datasets.Value("string"),
        "label": datasets.ClassLabel(names=list(LABEL_NAMES)),
    })


def _yaml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def dataset_card(splits: Mapping[str, Sequence[Example]], fmt: str) -> str:
    """The README.md of an exported folder: YAML header (datasets reads it) and prose."""
    head = ["---",
            f"pretty_name: {_yaml_str('Dialogue safety in mental-health support')}",
            "language:", "- zh", "license: other",
            f"license_name: {_yaml_str('no declared licence (see Licence below)')}",
            "task_categories:", "- text-classification",
            "tags:", "- dialogue-safety", "- mental-health", "- mhsafety"]
    if fmt != "hf":
        pattern = "{split}-*.parquet" if fmt == "parquet" else "{split}.jsonl"
        head += ["configs:", "- config_name: default", "  data_files:"]
        for split in splits:
            head += [f"  - split: {split}", f"    path: data/{pattern.format(split=split)}"]
    head += ["dataset_info:", "  features:",
             "  - name: id", "    dtype: string",
             "  - name: context", "    dtype: string",
             "  - name: response", "    dtype: string",
             "  - name: label", "    dtype:", "      class_label:", "        names:"]
    head += [f"          '{c.id}': {_yaml_str(c.name)}" for c in CATEGORIES]
    head += ["---", ""]

    body = ["# Dialogue safety in mental-health support", "",
            ("Chinese counselling dialogues: a context (turns marked `[seeker]` / "
             "`[supporter]`) and a supporter's response, labelled with one of eight categories "
             "of the sequential dialogue-safety taxonomy of Qiu et al. (NLPCC 2023). Exported "
             f"by `mhsafety data export --format {fmt}`."), "",
            "## Fields", "",
            "- `id` (string): the item's id (its `id`, or its 0-based index in the source file)",
            "- `context` (string): the dialogue so far, role markers kept",
            "- `response` (string): the response judged, starting with `[supporter]`",
            "- `label` (class label): 0..7, names below", "",
            "## Labels and the sequential framework", "",
            "The first node that fires decides the label; label 7 is the only safe one.", "",
            "| id | name | 中文 | node | safe |", "|---|---|---|---|---|"]
    body += [f"| {c.id} | {c.name} | {c.name_zh} | {c.node} | {'yes' if c.safe else 'no'} |"
             for c in CATEGORIES]
    body += [""] + [f"- Node {n.number} ({n.title}): {n.question}" for n in NODES]
    body += ["", "## Splits", "", "| split | items | " + " | ".join(LABEL_NAMES) + " |",
             "|---|---|" + "---|" * len(LABEL_NAMES)]
    for split, examples in splits.items():
        counts = Counter(ex.label for ex in examples)
        body.append(f"| {split} | {len(examples)} | "
                    + " | ".join(str(counts.get(i, 0)) for i in range(len(LABEL_NAMES))) + " |")
    loader = ("datasets.load_from_disk(PATH)" if fmt == "hf"
              else "datasets.load_dataset(PATH)")
    body += ["", "## Loading", "", "```python", "import datasets", f"ds = {loader}", "```", "",
             "mhsafety reads the folder back with `--data PATH`.", "",
             "## Licence", "", LICENCE_FACTS, "", "## Citation", "", "```bibtex", CITATION,
             "```", ""]
    return "\n".join(head + body)


def export_dataset(splits: Mapping[str, Sequence[Example]], out: str | os.PathLike[str],
                   fmt: str = "parquet") -> Path:
    """Write ``splits`` (name -> examples) as a dataset folder with its card; atomic.

    An existing folder is replaced; check it first with
    :func:`~mhsafety.io.prepare_output_dir` (``command="data export"``), as the CLI does.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not splits:
        raise UsageError("nothing to export: no splits given")
    try:
        import datasets
    except ModuleNotFoundError:
        raise missing_extra("datasets", "hf") from None
    datasets.disable_progress_bars()
    target = Path(out)
    with atomic_directory(target, "data export") as tmp:
        if fmt == "hf":
            datasets.DatasetDict({
                name: datasets.Dataset.from_list(_rows(exs), features=_features())
                for name, exs in splits.items()}).save_to_disk(str(tmp))
        else:
            (tmp / "data").mkdir()
            for name, exs in splits.items():
                if fmt == "jsonl":
                    write_examples(tmp / "data" / f"{name}.jsonl", exs)
                else:
                    ds = datasets.Dataset.from_list(_rows(exs), features=_features())
                    ds.to_parquet(str(tmp / "data" / f"{name}-00000-of-00001.parquet"))
        (tmp / CARD).write_text(dataset_card(splits, fmt), encoding="utf-8")
    return target
