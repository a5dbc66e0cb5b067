"""How every script's --help is laid out: its docstring as written, and after each flag's
help the default it takes (argparse's two formatters combined)."""
import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """A default that tells nothing (None, an empty list, a switch that is off) is left out:
    such a flag's help says itself what happens without it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


def parser(description):
    """An argument parser whose --help shows the description as written and the defaults."""
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
