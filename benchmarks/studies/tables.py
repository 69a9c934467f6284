"""The one table writer of the studies: Markdown tables, and the copies-found-per-kind table."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def markdown(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def kinds_table(
    results: dict[str, dict],
    kinds: Iterable[str],
    rows: dict[str, Callable[[dict], str]],
    label: Callable[[str], str] = str,
) -> str:
    """Copies found per kind, one column per result, then one line per entry of ``rows``.

    Parameters
    ----------
    results : dict
        Column name -> :func:`benchmarks.data.truth.score`'s figures (and more).
    kinds : iterable of str
        The copy kinds, in the table's order: each line is ``found / total``.
    rows : dict
        Line label -> the cell of a result's figures.
    label : callable, default str
        A kind's label in the first column.
    """
    lines = [
        [label(kind)]
        + [
            f"{r['pairs_found_by_kind'].get(kind, 0)} / {r['pairs_by_kind'][kind]}"
            for r in results.values()
        ]
        for kind in kinds
    ]
    lines += [[name] + [cell(r) for r in results.values()] for name, cell in rows.items()]
    return markdown(["copy kind", *results], lines)
