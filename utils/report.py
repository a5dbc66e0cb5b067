"""Markdown tables of results, e.g. one row per model with its -ELBO, KL and parameter count."""
from pathlib import Path

MISSING = "—"
DEFAULT_FLOAT_FORMAT = ".2f"
# Integers (parameter counts, epochs) get thousands separators: 1,234,567.
DEFAULT_INT_FORMAT = ",d"


def _is_number(value):
    # bool is a subclass of int, but True/False read better as text than as 1/0.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _format_cell(value, fmt=None):
    if value is None:
        return MISSING
    if callable(fmt):
        return fmt(value)
    if fmt is not None:
        return format(value, fmt)
    if isinstance(value, bool) or not _is_number(value):
        return str(value)
    if isinstance(value, int):
        return format(value, DEFAULT_INT_FORMAT)
    return format(value, DEFAULT_FLOAT_FORMAT)


def _is_numeric_column(rows, column):
    """A column is right-aligned when every value present in it is a number."""
    values = [row.get(column) for row in rows if row.get(column) is not None]
    return bool(values) and all(_is_number(v) for v in values)


def _separator(width, right_aligned):
    return "-" * (width - 1) + ":" if right_aligned else "-" * width


def _row_line(cells, widths, right_aligned):
    padded = [cell.rjust(w) if right else cell.ljust(w)
              for cell, w, right in zip(cells, widths, right_aligned)]
    return "| " + " | ".join(padded) + " |"


def markdown_table(rows, columns, formats=None):
    """Return a GitHub-flavoured markdown table of `rows` (dicts) restricted to `columns`.

    Floats get 2 decimals and integers thousands separators unless `formats` maps the column
    to a format spec (".4f") or a callable; a missing key or None prints as "—". Numeric
    columns are right-aligned. Cells are padded so the raw text also lines up.
    """
    formats = formats or {}
    header = [str(c) for c in columns]
    body = [[_format_cell(row.get(c), formats.get(c)) for c in columns] for row in rows]
    right_aligned = [_is_numeric_column(rows, c) for c in columns]
    # At least 3 wide: a separator needs three characters, e.g. "--:".
    widths = [max([3, len(header[i])] + [len(line[i]) for line in body])
              for i in range(len(columns))]
    lines = [_row_line(header, widths, right_aligned),
             "| " + " | ".join(_separator(w, r) for w, r in zip(widths, right_aligned)) + " |"]
    lines += [_row_line(line, widths, right_aligned) for line in body]
    return "\n".join(lines) + "\n"


def write_markdown_table(rows, columns, path, formats=None, title=None):
    """Write markdown_table(rows, columns, formats) to `path`, under a "# title" when given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = markdown_table(rows, columns, formats)
    if title:
        text = f"# {title}\n\n{text}"
    path.write_text(text)
