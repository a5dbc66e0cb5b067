"""The layers: model <- data_loader <- trainer/logger <- scripts, and nothing imports upward.

model/ imports only torch and its own files; utils/ only what every layer may use."""
import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

# Layer of each project module (a lower number may not import a higher one).
LAYERS = {"utils": 0, "model": 1, "data_loader": 2, "base.base_data_loader": 2, "base": 2,
          "trainer": 3, "logger": 3, "base.base_trainer": 3,
          "experiment": 4, "cli": 4, "train": 4, "test": 4, "sample": 4, "reproduce": 4, "bench": 4,
          "launcher": 4, "search_graph": 4, "user_code": 4, "graphvae": 4}
PROJECT = {name.split(".")[0] for name in LAYERS} | {"base"}


def layer(module):
    for name in (module, module.rsplit(".", 1)[0], module.split(".")[0]):
        if name in LAYERS:
            return LAYERS[name]
    return None


def project_imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
    return


def source_files():
    files = [p for p in REPO.glob("*.py")]
    for folder in ("model", "data_loader", "base", "trainer", "logger", "utils", "bench",
                   "bench/structure_family", "launcher"):
        files += sorted((REPO / folder).glob("*.py"))
    return files


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_imports_upward(path):
    relative = path.relative_to(REPO).with_suffix("")
    module = ".".join(relative.parts)
    own = layer(module)
    assert own is not None, f"{module} has no layer"
    for imported in project_imports(path):
        if imported.split(".")[0] not in PROJECT:
            continue
        if module.startswith("model"):
            assert imported.startswith("model"), f"{module} imports {imported}: model/ stands alone"
        assert layer(imported) <= own, f"{module} (layer {own}) imports {imported} (layer {layer(imported)})"


def test_importing_the_model_loads_neither_tensorboard_nor_the_other_layers():
    code = ("import model, sys; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('trainer', 'logger', 'data_loader', 'base', 'utils') or "
            "m.startswith('torch.utils.tensorboard')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
