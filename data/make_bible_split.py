"""Rebuild data/bible/{train,dev,test}.tsv.gz from the verse-aligned corpus.

The canonical split is by whole book (see data/README.md), so that no
near-duplicate verse leaks from training into dev or test.

    python data/make_bible_split.py ../shared/corpora/bible.en-es.tsv.gz
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

TEST_BOOKS = {"Ruth", "Jonah", "Mic", "Phil", "Jas", "1John"}
DEV_BOOKS = {"Joel", "Obad", "Hab", "Col", "2Pet", "Jude"}


def main(source: str) -> None:
    out_dir = Path(__file__).parent / "bible"
    out_dir.mkdir(exist_ok=True)
    rows: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        for line in handle:
            ref, english, spanish = line.rstrip("\n").split("\t")
            book = ref.split(".")[0]
            split = "test" if book in TEST_BOOKS else "dev" if book in DEV_BOOKS else "train"
            rows[split].append(f"{ref}\t{english}\t{spanish}\n")
    for split, lines in rows.items():
        # mtime=0 keeps the compressed bytes reproducible.
        with open(out_dir / f"{split}.tsv.gz", "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
                handle.write("ref\ten\tes\n".encode("utf-8"))
                handle.write("".join(lines).encode("utf-8"))
        print(split, len(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/corpora/bible.en-es.tsv.gz")
