"""HookScope entry point."""


def main(argv=None):
    return 0
