"""reproduce.py's parts: the runs (runs.py), their statistics (statistics.py), the table and
figures (report.py) and the command line's checks (checks.py)."""
