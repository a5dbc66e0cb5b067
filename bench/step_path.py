"""The framework files one training step runs through, measured by tracing it.

    python -m bench.step_path [-c configs/tiny.json] [--set key=value ...]

Builds the config's trainer, then records every Python function called while one batch is
taken from the loader, moved to the device and trained on (Trainer.train_step). Prints the
project's files those functions live in, `model/` apart (the model is what a reader came
to read, not the framework around it), with each file's length and the total: the path a
reader follows through one step (docs/architecture.md).
"""
import sys

if __name__ == "__main__" and not __package__:  # run as a file: bench/ is not a package then
    print("error: run the benchmarks from the repository's root as modules: "
          "python -m bench.step_path", file=sys.stderr)
    sys.exit(2)

from pathlib import Path  # noqa: E402

from bench.common import REPO, endless  # noqa: E402
from data_loader.base_data_loader import to_device  # noqa: E402
from experiment import build_trainer  # noqa: E402
from utils.config import ConfigParser, load_json  # noqa: E402
from utils.overrides import apply_overrides  # noqa: E402
from utils.errors import run_cli  # noqa: E402
from utils.help_format import add_overrides, parser as help_parser  # noqa: E402


def parse_args(argv=None):
    parser = help_parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--config", default=str(REPO / "configs" / "tiny.json"),
                        help="the run's config")
    add_overrides(parser, help="a config override, as train.py takes it (repeatable)")
    return parser.parse_args(argv)


def files_called(run):
    """The project's files (relative to the repository) whose functions run() calls."""
    seen = set()

    def record(frame, event, _):
        if event == "call":
            seen.add(frame.f_code.co_filename)

    sys.setprofile(record)
    try:
        run()
    finally:
        sys.setprofile(None)
    inside = (Path(name).resolve() for name in seen if not name.startswith("<"))
    return sorted(str(p.relative_to(REPO)) for p in inside
                  if p.is_relative_to(REPO) and not {".venv", "bench"} & set(p.parts))


def main(argv=None):
    args = parse_args(argv)
    config = ConfigParser(apply_overrides(load_json(args.config), ["n_gpu=0", *args.set]))
    trainer = build_trainer(config, validate=False)
    trainer.begin_epoch(1)
    batches = endless(trainer.data_loader)
    step = lambda: trainer.train_step(to_device(next(batches), trainer.device))  # noqa: E731
    step()  # the first step builds what later steps reuse
    files = [f for f in files_called(step) if not f.startswith("model/")]
    lengths = {f: len((REPO / f).read_text().splitlines()) for f in files}
    for name, length in lengths.items():
        print(f"{length:5d}  {name}")
    print(f"{sum(lengths.values()):5d}  lines in {len(files)} files (model/ not counted)")


if __name__ == "__main__":
    sys.exit(run_cli(main))
