#!/usr/bin/env python3
"""Fits go-md2man's tables into an 80-column man page: usage: man_tables.py IN.roff OUT.roff

go-md2man writes a table cell as a wrapping text block (T{ ... T}) only when the cell starts
with 30 characters of plain text, and gives no column a width, so tables with long cells run off
the page. Here every cell becomes a text block; each column but the last gets the width of its
widest cell, at most 16 characters unless a word in it is longer (a key name does not break),
and the last column the rest of the line, at least 30 characters: a table of three short
columns and a long one fits 80 columns, one with a 30-character key name in the first column
and four columns needs about 90.
"""
import re
import sys

PAGE = 72  # text width of a man page on an 80-column terminal (7 columns of indent)
MAX_COLUMN = 16
MIN_LAST = 30


def plain(cell):
    """The printed width of a roff cell: font escapes and special characters removed."""
    text = re.sub(r"\\f[A-Z]|\\f\(..|\\&", "", cell)
    return len(text.replace("\\-", "-").replace("\\\\", "\\"))


def parse_rows(lines):
    """Rows of a table body (lines between the format and .TE) as lists of cell texts."""
    rows, row, cell, in_block = [], [], "", False
    for line in lines:
        if in_block:
            if line.startswith("T}"):
                row.append(cell)
                in_block = False
                rest = line[2:]
                if not rest:
                    rows.append(row)
                    row = []
                    continue
                line = rest[1:]  # after the tab
            else:
                cell += (" " if cell else "") + line
                continue
        parts = line.split("\t")
        for part in parts[:-1]:
            row.append(part)
        last = parts[-1]
        if last == "T{":
            cell, in_block = "", True
        else:
            row.append(last)
            rows.append(row)
            row = []
    return rows


def table(options, rows):
    ncols = max(len(r) for r in rows)
    widths = [0] * ncols
    for r in rows:
        for i, c in enumerate(r):
            longest_word = max((plain(w) for w in c.split()), default=0)
            widths[i] = max(widths[i], min(max(MAX_COLUMN, longest_word), plain(c)))
    # allbox: a rule and a space or two around each column.
    last = max(MIN_LAST, PAGE - sum(widths[:-1]) - 3 * ncols)
    fmt = " ".join(f"lw({w}n)" for w in widths[:-1] + [last])
    out = [".TS", options, fmt + " ."]
    for r in rows:
        r = r + [""] * (ncols - len(r))
        out.append("\t".join(f"T{{\n{c}\nT}}" if c else "" for c in r))
    out.append(".TE")
    return out


def main():
    src = open(sys.argv[1]).read().split("\n")
    out, i = [], 0
    while i < len(src):
        if src[i] != ".TS":
            out.append(src[i])
            i += 1
            continue
        end = src.index(".TE", i)
        body = src[i + 1:end]
        options = body[0] if body[0].endswith(";") else ""
        first = 1 if options else 0
        fmt_end = next(k for k in range(first, len(body)) if body[k].rstrip().endswith("."))
        out += table(options, parse_rows(body[fmt_end + 1:]))
        i = end + 1
    open(sys.argv[2], "w").write("\n".join(out))


if __name__ == "__main__":
    main()
