"""Logging to the console and to <log_dir>/info.log, configured from logger_config.json."""
import json
import logging
import logging.config
from pathlib import Path

from utils.config import VERBOSITY
from utils.files import refuse_link

CONFIG = Path(__file__).with_name("logger_config.json")
LEVELS = dict(zip(VERBOSITY, (logging.WARNING, logging.INFO, logging.DEBUG)))


def setup_logging(log_dir):
    config = json.loads(CONFIG.read_text())
    for handler in config["handlers"].values():
        if "filename" in handler:
            handler["filename"] = str(Path(log_dir) / handler["filename"])
            refuse_link(handler["filename"])  # one line here, not logging's wrapped error
    logging.config.dictConfig(config)


class ConsoleFilter(logging.Filter):
    """Keeps records logged with extra={"file_only": True} (e.g. the model's full
    architecture) out of the console; the log file has them."""

    def filter(self, record):
        return not getattr(record, "file_only", False)


def get_logger(name, verbosity=2):
    if verbosity not in LEVELS:
        raise ValueError(f"verbosity must be one of {sorted(LEVELS)}, got {verbosity}")
    logger = logging.getLogger(name)
    logger.setLevel(LEVELS[verbosity])
    return logger


def format_value(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k} {format_value(v)}" for k, v in value.items())
    return str(value)
