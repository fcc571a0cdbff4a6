"""A second domain for fine-tuning: English->Spanish software messages, taken from the
gettext catalogs installed on this machine (/usr/share/locale/es/LC_MESSAGES/*.mo).

    python data/make_software_corpus.py OUTDIR

Each catalog pairs a program's English message (msgid) with its Spanish translation
(msgstr). The programs are free software (GPL, LGPL, BSD, PostgreSQL licences: see
/usr/share/doc/<package>/copyright). Kept: singular messages of at least 3 words and at
most 300 characters, whitespace collapsed, each English message once (the first catalog
in name order wins). Split by program, so no program's messages are in two splits:
test = dpkg, tar, wget; dev = make, sed, diffutils; train = every other catalog.
Writes OUTDIR/{train,dev,test}.tsv.gz (columns ref, en, es; ref = catalog:index) and
OUTDIR/README.txt listing the catalogs, their packages and the pair counts. The catalogs
differ between machines, so the corpus is rebuilt, not shipped.
"""

from __future__ import annotations

import gettext
import gzip
import subprocess
import sys
from pathlib import Path

LOCALE = Path("/usr/share/locale/es/LC_MESSAGES")
TEST = ("dpkg", "tar", "wget")
DEV = ("make", "sed", "diffutils")


def messages(path: Path) -> list[tuple[str, str]]:
    with open(path, "rb") as handle:
        catalog = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
    pairs = []
    for msgid, msgstr in catalog.items():
        if isinstance(msgid, tuple) or not msgid or not msgstr:  # plural forms, the header
            continue
        english = " ".join(msgid.split("\x04")[-1].split())  # drop a msgctxt
        spanish = " ".join(msgstr.split())
        if len(english.split()) >= 3 and len(english) <= 300 and spanish:
            pairs.append((english, spanish))
    return pairs


def package_of(path: Path) -> str:
    found = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True).stdout
    return found.split(":")[0] if found else "?"


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    splits: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    notes = []
    for path in sorted(LOCALE.glob("*.mo")):
        name = path.stem
        split = "test" if name in TEST else "dev" if name in DEV else "train"
        kept = 0
        for index, (english, spanish) in enumerate(messages(path)):
            if english in seen or "\t" in english + spanish:
                continue
            seen.add(english)
            splits[split].append(f"{name}:{index}\t{english}\t{spanish}")
            kept += 1
        notes.append(f"{name}\t{package_of(path)}\t{split}\t{kept}")
    for split, rows in splits.items():
        with gzip.open(out / f"{split}.tsv.gz", "wt", encoding="utf-8", newline="\n") as handle:
            handle.write("ref\ten\tes\n" + "".join(row + "\n" for row in rows))
    counts = ", ".join(f"{split} {len(rows)}" for split, rows in splits.items())
    (out / "README.txt").write_text(
        f"English->Spanish software messages from {LOCALE} ({counts} pairs)\n"
        "catalog\tpackage\tsplit\tpairs\n" + "\n".join(notes) + "\n", encoding="utf-8")
    print(counts)


if __name__ == "__main__":
    main()
