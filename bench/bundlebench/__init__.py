"""The pieces of ``bench/bench_bundle.py`` (``make bench``): export and import of big models.

* :mod:`bundlebench.model` — the benchmark's ONNX models and reading files through the cache;
* :mod:`bundlebench.runner` — running commands (logged, timed, peak RSS) and keeping results;
* :mod:`bundlebench.commands` — the ``airlock`` commands, the stock-tool references, bundles;
* :mod:`bundlebench.rounds` — what one round measures, per model size;
* :mod:`bundlebench.phases` — one more export and import split by phase (time, peak RSS);
* :mod:`bundlebench.resume` — the interrupted-import measurement (bytes re-read, via strace);
* :mod:`bundlebench.targets` — issue 14's targets, each judged on the unrounded figure;
* :mod:`bundlebench.report` — the summary table, the verdicts and the notes.
"""
