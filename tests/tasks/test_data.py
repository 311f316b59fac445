"""Readers (every format, good and malformed input), vocabularies, scaling, batching, datasets."""

import importlib.metadata

import numpy as np
import pytest
import torch

from birnn.data import (DATASETS, DataFormatError, SeriesEncoder, Standardizer, TaggingEncoder, Vocab, bucket_batches,
                        infer_format, load_dataset, make_windows, read_columns, read_conllu, read_series_csv,
                        read_text_csv, read_ts, read_wordtag)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def row(*fields):
    return "\t".join(fields) + "\n"


CONLLU = (
    "# sent_id = 1\n# text = Vámonos al mar.\n"
    + row("1-2", "Vámonos", "_", "_", "_", "_", "_", "_", "_", "_")
    + row("1", "Vamos", "ir", "VERB", "V", "_", "0", "root", "_", "_")
    + row("2", "nos", "nosotros", "PRON", "P", "_", "1", "obj", "_", "_")
    + row("2.1", "nos", "nosotros", "PRON", "P", "_", "_", "_", "1:obj", "_")
    + row("3", "al mar", "mar", "NOUN", "N", "_", "1", "obl", "_", "_")
    + "\n"
    + row("1", ".", ".", "PUNCT", "F", "_", "0", "root", "_", "_")
)


def test_conllu_words_only_and_columns(tmp_path):
    path = write(tmp_path, "a.conllu", CONLLU)  # no final blank line: still read
    assert read_conllu(path) == [(["Vamos", "nos", "al mar"], ["VERB", "PRON", "NOUN"]), (["."], ["PUNCT"])]
    assert read_conllu(path, tag_column="xpos")[0][1] == ["V", "P", "N"]


@pytest.mark.parametrize("bad,message", [
    (row("1", "a", "b", "NOUN"), "a.conllu:1: expected 10 tab-separated fields"),
    (row("x", "a", "a", "NOUN", "_", "_", "0", "root", "_", "_"), "a.conllu:1: invalid ID 'x'"),
    (row("2", "a", "a", "NOUN", "_", "_", "0", "root", "_", "_"), "a.conllu:1: word ID 2 out of sequence: expected 1"),
    (row("1", "a", "a", "_", "_", "_", "0", "root", "_", "_"), "a.conllu:1: no UPOS tag ('_') for word 'a'"),
])
def test_conllu_malformed(tmp_path, bad, message):
    with pytest.raises(DataFormatError, match=message.replace("(", "\\(").replace(")", "\\)")):
        read_conllu(write(tmp_path, "a.conllu", bad))


def test_conllu_error_line_number_after_good_sentences(tmp_path):
    text = CONLLU + "\n" + row("1", "x", "x", "X", "_", "_", "0", "root", "_")
    with pytest.raises(DataFormatError, match=r"a.conllu:11: expected 10"):
        read_conllu(write(tmp_path, "a.conllu", text))


def test_wordtag(tmp_path):
    path = write(tmp_path, "b.txt", "\tThe/at Fulton/np-tl said/vbd\n\n1/2/cd ''/''\n")
    assert read_wordtag(path) == [(["The", "Fulton", "said"], ["at", "np-tl", "vbd"]), (["1/2", "''"], ["cd", "''"])]
    with pytest.raises(DataFormatError, match=r"b.txt:2: token 'jury' is not word/TAG"):
        read_wordtag(write(tmp_path, "b.txt", "The/AT\nthe/AT jury said/VBD\n"))


def test_columns_two_and_four_columns(tmp_path):
    path = write(tmp_path, "c.bio", "-DOCSTART- -X- O O\n\nJohn B-PER\nSmith I-PER\nran O\n\nParis B-LOC\n")
    assert read_columns(path, scheme="bio") == [(["John", "Smith", "ran"], ["B-PER", "I-PER", "O"]), (["Paris"], ["B-LOC"])]
    conll = write(tmp_path, "d.conll", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n")
    assert read_columns(conll) == [(["EU", "rejects"], ["B-ORG", "O"])]
    with pytest.raises(DataFormatError, match=r"c.bio:2: tag 'PER' is not a BIO tag"):
        read_columns(write(tmp_path, "c.bio", "John B-PER\nSmith PER\n"), scheme="bio")
    with pytest.raises(DataFormatError, match=r"c.bio:1: expected a token and a tag, got one field 'John'"):
        read_columns(write(tmp_path, "c.bio", "John\n"))


def test_text_csv_and_tsv(tmp_path):
    path = write(tmp_path, "e.csv", 'category,text\nfresh,"Great, really."\nplot,"story"\nrotten,Bad.\n')
    assert read_text_csv(path) == [("Great, really.", "fresh"), ("story", "plot"), ("Bad.", "rotten")]
    assert read_text_csv(path, keep_labels=("fresh", "rotten")) == [("Great, really.", "fresh"), ("Bad.", "rotten")]
    tsv = write(tmp_path, "f.tsv", "sentence\tsentiment\nfine film\tpos\n")
    assert read_text_csv(tsv) == [("fine film", "pos")]
    with pytest.raises(DataFormatError, match=r"e.csv:3: expected 2 fields as in the header, got 3"):
        read_text_csv(write(tmp_path, "e.csv", "text,label\na,b\na,b,c\n"))
    with pytest.raises(DataFormatError, match=r"e.csv:1: cannot tell which column holds the label"):
        read_text_csv(write(tmp_path, "e.csv", "text,stars\na,5\n"))
    with pytest.raises(DataFormatError, match=r"e.csv:1: no column 'score' for the label"):
        read_text_csv(write(tmp_path, "e.csv", "text,stars\na,5\n"), label_column="score")
    with pytest.raises(DataFormatError, match=r"e.csv:2: empty text"):
        read_text_csv(write(tmp_path, "e.csv", "text,label\n,pos\n"))
    with pytest.raises(FileNotFoundError, match="nope.csv: no such file"):
        read_text_csv(tmp_path / "nope.csv")


def test_series_csv(tmp_path):
    path = write(tmp_path, "s.csv", '"YEAR","SUNACTIVITY"\n1700,5\n1701,11.5\n')
    assert read_series_csv(path).tolist() == [[5.0], [11.5]]
    assert read_series_csv(path, ["YEAR", "SUNACTIVITY"]).shape == (2, 2)
    with pytest.raises(DataFormatError, match=r"s.csv:3: column 'SUNACTIVITY': 'n/a' is not a number"):
        read_series_csv(write(tmp_path, "s.csv", "YEAR,SUNACTIVITY\n1700,5\n1701,n/a\n"))


TS = """# comment
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b
@data
1,2,3:4,5,6:a
7,?:8,9:b
"""


def test_ts_multivariate_variable_length_and_missing(tmp_path):
    cases = read_ts(write(tmp_path, "t.ts", TS))
    assert [c[1] for c in cases] == ["a", "b"]
    assert cases[0][0].tolist() == [[1, 4], [2, 5], [3, 6]]  # (T, C)
    assert cases[1][0].shape == (2, 2) and np.isnan(cases[1][0][1, 0])


def test_ts_timestamps_and_errors(tmp_path):
    stamped = TS.replace("@timeStamps false", "@timeStamps true").replace(
        "1,2,3:4,5,6:a\n7,?:8,9:b\n", "(0,1),(1,2):(0,3),(1,4):a\n")
    assert read_ts(write(tmp_path, "t.ts", stamped))[0][0].tolist() == [[1, 3], [2, 4]]
    with pytest.raises(DataFormatError, match=r"t.ts:11: class 'c' is not one of @classLabel \['a', 'b'\]"):
        read_ts(write(tmp_path, "t.ts", TS.replace("8,9:b", "8,9:c")))
    with pytest.raises(DataFormatError, match=r"t.ts:10: expected @dimensions 2 dimensions, got 1"):
        read_ts(write(tmp_path, "t.ts", TS.replace("1,2,3:4,5,6:a", "1,2,3:a")))
    with pytest.raises(DataFormatError, match=r"t.ts:10: the dimensions of a case must be non-empty and equally long"):
        read_ts(write(tmp_path, "t.ts", TS.replace("1,2,3:4,5,6:a", "1,2:4,5,6:a")))
    with pytest.raises(DataFormatError, match=r"t.ts:10: 'x' is not a number"):
        read_ts(write(tmp_path, "t.ts", TS.replace("1,2,3:", "1,x,3:")))
    with pytest.raises(DataFormatError, match=r"t.ts: no @data line"):
        read_ts(write(tmp_path, "t.ts", "@problemName x\n"))


def test_infer_format():
    assert [infer_format(p) for p in ("a.conllu", "b.txt", "c.bio", "d.ts", "e.csv", "f.tsv.bz2")] == \
        ["conllu", "wordtag", "columns", "ts", "text", "text"]
    assert infer_format("s.csv", task="forecast") == "series"
    with pytest.raises(ValueError, match="cannot infer the format of x.json"):
        infer_format("x.json")


def test_vocab_and_encoders_fit_on_train_only():
    v = Vocab.build([["a", "b", "a"], ["c"]], min_freq=1, max_size=4)
    assert v.itos == ["<pad>", "<unk>", "a", "b"] and v.encode(["c"]) == [1]
    labels = Vocab.build([["x"]], specials=())
    with pytest.raises(KeyError, match="'y' is not in the vocabulary"):
        labels.encode(["y"])
    train = [(np.array([[0.0], [2.0]]), "a"), (np.array([[4.0]]), "b")]
    enc = SeriesEncoder.fit(train)
    assert enc.scaler.mean.tolist() == [2.0]  # fitted on the training series only
    batch = enc.collate([enc.encode(r, i) for i, r in enumerate(train)])
    assert batch.inputs.shape == (2, 2, 1) and batch.lengths.tolist() == [2, 1] and batch.inputs[1, 1, 0] == 0
    tag = TaggingEncoder.fit([(["The", "cat"], ["D", "N"])], tagset=["V"])
    b = tag.collate([tag.encode((["the", "dog", "ran"], ["D", "N", "V"]))])
    assert b.chars.shape == (1, 3, 3) and b.targets.tolist() == [[0, 1, 2]] and b.inputs[0, 1] == tag.words.unk_id
    s = Standardizer.fit([np.array([[1.0], [3.0]])])
    assert Standardizer.from_dict(s.to_dict()).transform(np.array([[3.0]])).tolist() == [[1.0]]


def test_bucket_batches_cover_everything_deterministically():
    lengths = torch.randint(1, 50, (103,)).tolist()
    a = bucket_batches(lengths, 8, shuffle=True, generator=torch.Generator().manual_seed(1))
    b = bucket_batches(lengths, 8, shuffle=True, generator=torch.Generator().manual_seed(1))
    assert a == b and sorted(i for batch in a for i in batch) == list(range(103))
    spread = sum(max(lengths[i] for i in batch) - min(lengths[i] for i in batch) for batch in a) / len(a)
    assert spread < 15  # similar lengths together
    ordered = bucket_batches(lengths, 8, shuffle=False)
    assert [lengths[i] for i in ordered[0]] == sorted(lengths, reverse=True)[:8]


def test_make_windows_respect_split_ranges():
    series = np.arange(20.0)[:, None]
    x, y = make_windows(series, 5, 2, start=10, stop=15)
    assert y[0, 0, 0] == 10 and y[-1, -1, 0] == 14 and x[0, 0, 0] == 5


def _installed(package):
    try:
        importlib.metadata.version(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.parametrize("name", list(DATASETS))
def test_offline_datasets_load(name):
    spec = DATASETS[name]
    if spec.package and not _installed(spec.package):
        pytest.skip(f"{spec.package} not installed ({spec.install})")
    data = load_dataset(name)
    if spec.task == "forecast":
        assert data.series.ndim == 2 and 0 < data.dev_start < data.test_start < len(data.series)
        return
    assert len(data.train) > len(data.dev) > 0 and len(data.test) > 0
    if name == "japanese-vowels":
        assert len(data.train) + len(data.dev) == 270 and len(data.test) == 370
        lengths = [len(x) for x, _ in data.train + data.test]
        assert min(lengths) == 7 and max(lengths) == 29 and data.train[0][0].shape[1] == 12
    if name == "turkish-upos":
        assert (len(data.train), len(data.dev), len(data.test)) == (3881, 485, 485)
        assert {t for _, ts in data.train for t in ts} >= {"NOUN", "VERB", "PUNCT", "ADJ"}
    if name == "rotten-tomatoes":
        assert {lab for _, lab in data.train} == {"fresh", "rotten"}


# -- round three (#36): headers, quotes, delimiters and multiword tokens name their line -------------
def test_ts_header_values_are_checked_on_their_own_line(tmp_path):
    head = "@problemName x\n@timeStamps false\n@univariate true\n@classLabel true a b\n"
    cases = {
        "@seriesLength x\n": "h.ts:5: @seriesLength must be a whole number, got 'x'",
        "@equalLength maybe\n": "h.ts:5: @equalLength must be true or false, got 'maybe'",
        "# a comment\n@dimensions two\n": "h.ts:6: @dimensions must be a whole number, got 'two'",
    }
    for extra, message in cases.items():
        path = write(tmp_path, "h.ts", head + extra + "@data\n1,2,3:a\n4,5,6:b\n")
        with pytest.raises(DataFormatError, match=message):
            read_ts(path)


def test_an_unclosed_quote_is_reported_where_it_opens(tmp_path):
    path = write(tmp_path, "q.csv", 'text,label\n"fine",pos\n"no end,neg\nmore,pos\n')
    with pytest.raises(DataFormatError, match=r"q\.csv:3: a quoted field opened on line 3 is not closed before "
                                              r"line 4"):
        read_text_csv(path)


def test_a_file_under_the_other_delimiters_name_says_so(tmp_path):
    comma = write(tmp_path, "c.tsv", 'text,label\n"good, fine",pos\nbad,neg\n')
    with pytest.raises(DataFormatError, match=r"c\.tsv:1: the header has 1 comma and no tab: the file looks "
                                              r"comma-separated, but its name says \.tsv; rename it to \.csv"):
        read_text_csv(comma)
    tabs = write(tmp_path, "t.csv", "text\tlabel\ngood\tpos\n")
    with pytest.raises(DataFormatError, match=r"t\.csv:1: the header has 1 tab and no comma: the file looks "
                                              r"tab-separated, but its name says \.csv; rename it to \.tsv"):
        read_text_csv(tabs)
    assert read_text_csv(write(tmp_path, "one.tsv", "text\tlabel\na, b\tpos\n")) == [("a, b", "pos")]


def test_a_sentence_of_only_multiword_ranges_is_refused_with_its_line(tmp_path):
    text = (CONLLU + "\n# sent_id = 2\n" + row("1-2", "del", "_", "_", "_", "_", "_", "_", "_", "_") + "\n")
    path = write(tmp_path, "mw.conllu", text)
    start = text.splitlines().index(row("1-2", "del", "_", "_", "_", "_", "_", "_", "_", "_").rstrip("\n")) + 1
    with pytest.raises(DataFormatError, match=rf"mw\.conllu:{start}: the sentence starting here has no word lines"):
        read_conllu(path)


def test_tagged_records_know_each_tokens_line(tmp_path):
    conllu = read_conllu(write(tmp_path, "a.conllu", CONLLU))
    lines = CONLLU.splitlines()
    assert conllu.where(0, 2) == f"{tmp_path / 'a.conllu'}:{lines.index(row('3', 'al mar', 'mar', 'NOUN', 'N', '_', '1', 'obl', '_', '_').rstrip(chr(10))) + 1}"
    cols = read_columns(write(tmp_path, "a.bio", "-DOCSTART- O\n\nJohn B-PER\nlives O\n\nin O\nParis B-LOC\n"))
    assert [cols.where(1, 1), cols.where(0, 0), cols.where(1)] == [f"{tmp_path / 'a.bio'}:{n}" for n in (7, 3, 6)]
    assert read_wordtag(write(tmp_path, "a.txt", "a/X b/Y\n\nc/Z\n")).where(1) == f"{tmp_path / 'a.txt'}:3"
