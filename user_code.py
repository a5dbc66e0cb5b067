"""--import: a researcher's own module, loaded because they asked for it on the command line.

`python train.py --import my_module -c config.json` imports my_module before the config is
read, so that what it registers (a data set, an encoder, a likelihood ...; model/registry.py)
can be named by the config. It runs that module's code, as `python my_module.py` would: the
user's own choice, typed by them, never a config's (a config names registered things only,
so a config handed to you runs no code). A name is looked up on Python's path and then in the
current directory (after the project's own modules, which a file of the same name never
replaces); a path ending in .py is loaded from that file.
"""
import importlib
import importlib.util
import sys
from pathlib import Path

from utils.errors import UserError


def import_user_modules(names):
    """Import each module named on the command line (--import), in order."""
    return [import_user_module(name) for name in names]


def import_user_module(name):
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise UserError(f"--import {name}: no such file; give the path of your .py file "
                            f"or a module name")
        if path.stem in sys.modules:
            raise UserError(f"--import {name}: a module named {path.stem!r} is loaded already "
                            f"(the project's or Python's); rename your file")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    if str(Path.cwd()) not in sys.path:
        sys.path.append(str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is None or not (name == e.name or name.startswith(e.name + ".")):
            raise  # a module the user's own code imports: its traceback is theirs to read
        raise UserError(f"--import {name}: no module {name!r} on Python's path or in "
                        f"{Path.cwd()}; give a module name or the path of a .py "
                        f"file") from None
