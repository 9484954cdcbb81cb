"""The benchmark inside tools researchers already run.

- :mod:`.inspect_task`: an inspect_ai task (``inspect eval mhsafety/dialogue_safety``);
- :mod:`.lmeval`: an lm-evaluation-harness task folder (``mhsafety export-task lm-eval``);
- :mod:`.harness_logs`: inspect eval logs and lm-eval sample files read back as prediction
  records, so ``evaluate``, ``analyze`` and ``report`` score harness runs;
- :mod:`.ray`: screening many shards of logs with Ray Data (``mhsafety predict --engine ray``).

Each module imports its tool only when used; the tools come with the extras ``inspect``,
``lmeval`` and ``ray``.
"""
