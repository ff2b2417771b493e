"""Write a measured table into README.md between its two marker lines."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def write_section(begin: str, end: str, table: str) -> None:
    """Replace what README.md holds between the lines ``begin`` and ``end`` by ``table``."""
    text = README.read_text()
    start, stop = text.index(begin) + len(begin), text.index(end)
    README.write_text(text[:start] + "\n" + table + "\n" + text[stop:])
    print(f"wrote the table into {README}")


def publish(rows: list[str], begin: str, end: str, write: bool) -> None:
    """Print the table of ``rows``; with ``write``, also put it into README.md between ``begin`` and ``end``."""
    table = "\n".join(rows)
    print(table)
    if write:
        write_section(begin, end, table)
