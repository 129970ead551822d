"""A small results table with numbered notes, shared by every results class.

Modelled on statsmodels' ``Summary``: ``as_text()``, ``as_html()`` and a
``_repr_html_`` for notebooks. Torch-free.
"""

from __future__ import annotations

import html

__all__ = ["Summary"]


class Summary:
    """A small text/HTML table with numbered notes (statsmodels' ``Summary`` idea).

    Parameters
    ----------
    title : str
        Heading.
    rows : list of (str, str)
        Label/value pairs.
    notes : list of str
        Numbered notes printed below the table.
    """

    def __init__(self, title: str, rows: list[tuple[str, str]], notes: list[str]) -> None:
        self.title = title
        self.rows = rows
        self.notes = notes

    def as_text(self) -> str:
        """The table as plain text."""
        width = max([len(a) for a, _ in self.rows] + [10])
        line = "=" * max(len(self.title), 78)
        out = [self.title, line]
        out += [f"{a:<{width}}  {b}" for a, b in self.rows]
        out.append(line)
        if self.notes:
            out.append("Notes:")
            out += [f"[{i}] {n}" for i, n in enumerate(self.notes, 1)]
        return "\n".join(out)

    def as_html(self) -> str:
        """The table as an HTML fragment."""
        rows = "".join(
            f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in self.rows
        )
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f"<table><caption>{html.escape(self.title)}</caption>{rows}</table>"
            + (f"<ol>{notes}</ol>" if notes else "")
        )

    def _repr_html_(self) -> str:
        return self.as_html()

    def __str__(self) -> str:
        return self.as_text()

    def __repr__(self) -> str:
        return self.as_text()
