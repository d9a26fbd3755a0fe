"""Tables drawn as etcdctl draws them (olekukonko/tablewriter, etcdctl's settings):

    +-----------------+------------+
    |    ENDPOINT     |    HASH    |
    +-----------------+------------+
    | 127.0.0.1:24379 | 3016003885 |
    +-----------------+------------+

Headers upper-cased ("_" and "." become spaces) and centred; cells right-aligned;
a cell wider than 30 columns is wrapped at spaces with tablewriter's
minimum-raggedness rule, so long error messages break where etcdctl breaks them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

MAX_CELL_WIDTH = 30
_LONG_LINE_PENALTY = 100_000


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _wrap_words(words: list[str], limit: int) -> list[list[str]]:
    """tablewriter's WrapWords: breaks minimising the sum of squared slack."""
    count = len(words)
    widths = [display_width(w) for w in words]
    length = [[0] * count for _ in range(count)]
    for i in range(count):
        length[i][i] = widths[i]
        for j in range(i + 1, count):
            length[i][j] = length[i][j - 1] + 1 + widths[j]
    cost, next_break = [2**31 - 1] * count, [0] * count
    for i in range(count - 1, -1, -1):
        if length[i][count - 1] <= limit:
            cost[i], next_break[i] = 0, count
            continue
        for j in range(i + 1, count):
            slack = limit - length[i][j - 1]
            candidate = slack * slack + cost[j]
            if length[i][j - 1] > limit:
                candidate += _LONG_LINE_PENALTY
            if candidate < cost[i]:
                cost[i], next_break[i] = candidate, j
    lines, i = [], 0
    while i < count:
        lines.append(words[i:next_break[i]])
        i = next_break[i]
    return lines


@dataclass(frozen=True, slots=True)
class Cell:
    lines: list[str]
    width: int  # a wrapped cell keeps the full wrap width, as tablewriter's does


def _cell(text: str) -> Cell:
    paragraphs = text.split("\n")
    width = min(max(display_width(p) for p in paragraphs), MAX_CELL_WIDTH)
    lines: list[str] = []
    for index, paragraph in enumerate(paragraphs):
        words = paragraph.split(" ")
        limit = max([width] + [display_width(w) for w in words])
        if index > 0:
            lines.append(" ")
        lines.extend(" ".join(line) for line in _wrap_words(words, limit))
    return Cell(lines, max([width] + [display_width(line) for line in lines]))


def _title(header: str) -> str:
    title = header.replace("_", " ").replace(".", " ").strip()
    return (title or (" " if header else "")).upper()


def render(headers: list[str], rows: list[list[str]]) -> str:
    header_cells = [_cell(h) for h in headers]
    body = [[_cell(cell) for cell in row] for row in rows]
    widths = [cell.width for cell in header_cells]
    for row in body:
        for col, cell in enumerate(row):
            widths[col] = max(widths[col], cell.width)
    border = "+" + "+".join("-" * (w + 2) for w in widths) + "+\n"
    out = [border]
    out.extend(_physical_lines(header_cells, widths, centre=True))
    out.append(border)
    for row in body:
        out.extend(_physical_lines(row, widths, centre=False))
    out.append(border)
    return "".join(out)


def _physical_lines(cells: list[Cell], widths: list[int], centre: bool) -> list[str]:
    height = max(len(cell.lines) for cell in cells)
    lines = []
    for y in range(height):
        parts = []
        for cell, width in zip(cells, widths):
            text = cell.lines[y] if y < len(cell.lines) else ""
            if centre:
                text = _title(text)
            gap = width - display_width(text)
            left = gap // 2 if centre else gap
            parts.append(" " * left + text + " " * (gap - left))
        lines.append("| " + " | ".join(parts) + " |\n")
    return lines
