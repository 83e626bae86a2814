"""The exit codes of the `rerank` commands, in one place (the CLI's --help lists them)."""

EXIT_OK = 0
"""Every line succeeded."""
EXIT_SOME_FAILED = 1
"""Some lines failed; each has its error line in the output."""
EXIT_USAGE = 2
"""A usage error (bad option, unreadable input, OUTPUT is INPUT, OUTPUT cannot be written): nothing was done."""
EXIT_WRITE_FAILED = 3
"""Writing OUTPUT failed midway (a full disk, a closed pipe): the lines written are whole."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (`rerank generate`: rerun with --resume to finish)."""

HELP = (
    "Exit codes: 0 every line succeeded; 1 some lines failed (each has an error line); "
    "2 usage error, nothing done (also: OUTPUT is INPUT, OUTPUT cannot be written); "
    "3 writing OUTPUT failed midway (disk full, closed pipe), the lines written are whole; "
    "130 interrupted."
)
