"""data.context_halves: a training pair cut at a shared clause mark adds its second half,
behind its first half as context; dev and test stay whole."""

from __future__ import annotations

from pathlib import Path

from stages import artifacts
from stages.corpus.config import DataConfig
from stages.corpus.halves import cut_pair, cut_text
from stages.corpus.prepare import run_prepare
from stages.corpus.vocab import join_context
from stages.later_keys import earlier_forms


def resolve(path: str) -> Path:
    return Path(path)


def test_a_pair_is_cut_at_the_shared_mark_nearest_the_middle() -> None:
    src = "He took the scroll; and he read it to them: all of the people heard it."
    tgt = "Y tomó el rollo; y se lo leyó á ellos: todo el pueblo lo oyó."
    assert cut_pair(src, tgt) == ("He took the scroll; and he read it to them:", "all of the people heard it.",
                                  "Y tomó el rollo; y se lo leyó á ellos:", "todo el pueblo lo oyó.")


def test_pairs_without_a_shared_cut_stay_whole() -> None:
    assert cut_pair("He took the scroll and read it.", "Y tomó el rollo; y lo leyó.") is None  # counts differ
    assert cut_pair("He went. And he came back to the city that day.",  # same rank, far apart
                    "Y fué y volvió á la ciudad aquel mismo día. Y vino.") is None
    assert cut_pair("Go. Now go back to your house and rest.", "Id. Volved ahora á vuestra casa y descansad.") is None
    assert cut_pair("Yes? No", "¿Sí? No") is None  # a half of one word
    assert cut_pair("He said to them: go home.", "Díjoles él: id á casa.") == (
        "He said to them:", "go home.", "Díjoles él:", "id á casa.")


def test_needs_a_source_context() -> None:
    problems = DataConfig(context_halves=True).problems()
    assert any("data.context_halves" in p and "data.context" in p for p in problems)
    assert DataConfig(context=1, context_halves=True).problems() == []


def _write_tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("en\tes\n" + "".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


PAIRS = [
    ("In the beginning God made the earth.", "En el principio crió Dios la tierra."),
    ("God saw the light; and it was good.", "Y vió Dios la luz; y era buena."),
    ("He called the light day.", "Y llamó á la luz Día."),
    ("The waters under the sky moved: and they were gathered together in one place.",
     "Y las aguas se movieron: y fueron juntadas en un lugar."),
]


def _lines(out: Path, split: str, side: str) -> list[str]:
    return artifacts.split_text(out, split, side).read_text(encoding="utf-8").splitlines()


def test_prepare_adds_each_second_half_behind_its_first(tmp_path: Path) -> None:
    data = _write_tsv(tmp_path / "pairs.tsv", PAIRS)
    for target_context in (False, True):
        out = tmp_path / f"prepare-{target_context}"
        cfg = DataConfig(train=str(data), dev=str(data), test=str(data), context=1, context_halves=True,
                         target_context=target_context)
        summary = run_prepare(cfg, out, resolve, seed=1)
        assert summary["context_halves"] == 2
        assert summary["pairs"] == {"train": 6, "dev": 4, "test": 4}
        src, tgt = _lines(out, "train", "src"), _lines(out, "train", "tgt")
        assert [src[2], src[5]] == [join_context(["God saw the light;"], "and it was good."),
                                    join_context(["The waters under the sky moved:"],
                                                 "and they were gathered together in one place.")]
        second = ["y era buena.", "y fueron juntadas en un lugar."]
        if target_context:
            second = [join_context(["Y vió Dios la luz;"], second[0]),
                      join_context(["Y las aguas se movieron:"], second[1])]
        assert [tgt[2], tgt[5]] == second  # each half right after its whole pair
        assert src[1] == join_context([PAIRS[0][0]], PAIRS[1][0])  # the whole pairs keep their context
        assert _lines(out, "dev", "src") == _lines(out, "test", "src") == [
            join_context([p[0] for p in PAIRS[i - 1: i]], PAIRS[i][0]) for i in range(4)]
        assert _lines(out, "test", "tgt") == [p[1] for p in PAIRS]


def test_halves_pass_the_length_filter_on_their_own(tmp_path: Path) -> None:
    data = _write_tsv(tmp_path / "pairs.tsv", PAIRS)
    cfg = DataConfig(train=str(data), dev=str(data), test="", context=1, context_halves=True, max_words=7)
    summary = run_prepare(cfg, tmp_path / "prepare", resolve, seed=1)
    assert summary["dropped"] == {"too_long": 3}  # 2 whole pairs and 1 half have over 7 words
    assert _lines(tmp_path / "prepare", "train", "tgt") == [PAIRS[0][1], "y era buena.", PAIRS[2][1]]


def test_runs_made_before_the_key_stay_current() -> None:
    data = {"context": 1, "target_context": False, "context_halves": False}
    forms = earlier_forms({"data": data})
    assert {"context": 1, "target_context": False} in [f["data"] for f in forms]


def test_a_text_cut_in_halves_lists_its_second_halves() -> None:
    src, tgt, seconds = cut_text([p[0] for p in PAIRS], [p[1] for p in PAIRS])
    assert src == ["God saw the light;", "and it was good.", "The waters under the sky moved:",
                   "and they were gathered together in one place."]
    assert tgt[1] == "y era buena." and seconds == [1, 3]


def test_a_dev_split_carved_from_training_takes_whole_pairs_and_their_halves_leave_training(tmp_path: Path) -> None:
    pairs = [(f"Man {i} saw the light; and it was good {i}.", f"El hombre {i} vió la luz; y era buena {i}.")
             for i in range(40)]
    data = _write_tsv(tmp_path / "pairs.tsv", pairs)
    cfg = DataConfig(train=str(data), dev="", test="", context=1, context_halves=True, dev_size=5)
    out = tmp_path / "prepare"
    summary = run_prepare(cfg, out, resolve, seed=3)
    assert summary["context_halves"] == 40
    assert summary["pairs"] == {"train": 80 - 2 * 5, "dev": 5}  # 5 whole pairs leave with their halves
    dev = [line.split(" <sep> ")[-1] for line in _lines(out, "dev", "src")]
    train = [line.split(" <sep> ")[-1] for line in _lines(out, "train", "src")]  # the sentences, not their context
    assert all(";" in line for line in dev)  # whole pairs
    numbers = {line.split()[1] for line in dev}
    assert not [t for t in train if any(t.endswith(f" {n}.") for n in numbers)]
    assert len([t for t in train if t.startswith("and")]) == 35
