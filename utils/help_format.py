"""Every script's command line: --help laid out as its docstring as written, and after each
flag's help the default it takes (argparse's two formatters combined); a bad flag is one line
(utils/errors.run_cli), not argparse's usage block."""
import argparse

from utils.errors import UserError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """A default that tells nothing (None, an empty list, a switch that is off) is left out:
    such a flag's help says itself what happens without it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


def parser(description):
    """An argument parser whose --help shows the description as written and the defaults."""
    return Parser(description=description, formatter_class=HelpFormatter)


def add_overrides(parser, help):
    """--set KEY=VALUE ..., which may be given several times: every override counts
    (utils/overrides.apply_overrides)."""
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help=help)
