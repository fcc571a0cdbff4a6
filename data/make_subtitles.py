"""Build subtitle files of the test books: `subtitles/test.en.srt` and its reference
`subtitles/test.es.srt`, with the same cues and timings.

Each verse becomes one or more cues of at most two 42-character lines (a long verse runs
over several cues, cut at word boundaries, the way a sentence runs over cues in a film);
the Spanish verse is cut into as many cues, in proportion to the English. A cue lasts as
long as its text takes to read at 15 characters per second (at least 1.5 s), with 200 ms
between cues and a second between verses.

    python data/make_subtitles.py        # rewrites data/subtitles/test.{en,es}.srt
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from stages.subtitles.text import split_by_share, wrap_line  # noqa: E402

CUE_CHARS = 84


def cue_texts(verse: str) -> list[str]:
    """Cut a verse evenly at word boundaries into the fewest pieces that fit two lines of 42."""
    parts = max(1, -(-len(verse) // CUE_CHARS))
    while True:
        pieces = split_by_share(verse, [1] * parts) or [verse]
        if all(len(wrap_line(p, 42, 2)) <= 2 for p in pieces) or parts > 8:
            return pieces
        parts += 1


def clock(ms: int) -> str:
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def build(rows: list[dict[str, str]]) -> tuple[str, str]:
    en_blocks, es_blocks = [], []
    now, number = 1000, 0
    for row in rows:
        en_parts = cue_texts(row["en"])
        es_parts = split_by_share(row["es"], [len(p) for p in en_parts]) or [row["es"]] * len(en_parts)
        for en, es in zip(en_parts, es_parts):
            number += 1
            length = max(1500, len(en) * 1000 // 15)
            timing = f"{clock(now)} --> {clock(now + length)}"
            en_blocks.append("\n".join([str(number), timing, *wrap_line(en, 42, 2)]))
            es_blocks.append("\n".join([str(number), timing, *wrap_line(es, 42, 2)]))
            now += length + 200
        now += 800
    return "\n\n".join(en_blocks) + "\n", "\n\n".join(es_blocks) + "\n"


def main() -> None:
    with gzip.open(HERE / "bible" / "test.tsv.gz", "rt", encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read()), delimiter="\t", quoting=csv.QUOTE_NONE))
    en, es = build(rows)
    out = HERE / "subtitles"
    out.mkdir(exist_ok=True)
    (out / "test.en.srt").write_text(en, encoding="utf-8")
    (out / "test.es.srt").write_text(es, encoding="utf-8")
    print(f"{len(rows)} verses -> {en.count(' --> ')} cues in {out}")


if __name__ == "__main__":
    main()
