"""``python -m swinzoo``: the same CLI as the ``swinzoo`` command."""

from swinzoo.cli import main

if __name__ == "__main__":
    main(prog_name="swinzoo")
