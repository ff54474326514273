"""Reference values for the featurizers (trainer/tests/featurize.rs): scikit-learn's
TfidfVectorizer and HashingVectorizer on a small corpus with punctuation, Unicode,
empty rows and repeated terms. Run from this directory with the setup venv's python:

    python make_text.py   # writes text.json
"""

import json

import sklearn
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer

TRAIN = [
    "The cat sat on the mat. The cat!",
    "Dogs and cats: friends? Maybe... dogs, cats, dogs.",
    "",
    "Naïve café owners serve crème brûlée — très délicieux.",
    "ΣΟΦΙΑ and σοφία are one word; ΟΔΟΣ ends in a final sigma.",
    "東京 is big, 東京タワー is tall",
    "emoji 😀😀 and hashtags #fun #fun_times @user_1",
    "numbers 42 4.2 4,2 and 1st 2nd 3rd",
    "UPPER lower MiXeD case CASE Case",
    "a b c d e single letters are dropped by the word tokenizer",
    "repeated repeated repeated repeated term term",
    "tab\tseparated\twords and  double  spaces   here",
    "new\nline and\r\ncarriage returns",
    "under_score and hyphen-ated and apostrophe's",
    "the the the the the",
    "   ",
    "x",
    "Mixed: café CAFÉ Café cafe",
    "¹²³ superscripts ½ fractions and ⅷ roman",
    "cats dogs mats",
]
TEST = [
    "The cat and the dog",
    "unknownword only",
    "",
    "café crème and σοφία",
    "dogs dogs dogs cats",
]

CASES = [
    ("word_default", dict(analyzer="word"), {}),
    ("word_1_2", dict(analyzer="word", ngram_range=(1, 2)), {"ngram": [1, 2]}),
    ("word_2_3_sublinear", dict(analyzer="word", ngram_range=(2, 3), sublinear_tf=True), {"ngram": [2, 3], "sublinear_tf": True}),
    ("word_min_df_2", dict(analyzer="word", min_df=2), {"min_df": 2}),
    ("word_max_df_half", dict(analyzer="word", max_df=0.5), {"max_df": 0.5}),
    ("word_min_df_frac", dict(analyzer="word", min_df=0.1, max_df=0.9), {"min_df": 0.1, "max_df": 0.9}),
    ("word_max_features", dict(analyzer="word", ngram_range=(1, 2), max_features=9), {"ngram": [1, 2], "max_features": 9}),
    ("word_no_lowercase", dict(analyzer="word", lowercase=False), {"lowercase": False}),
    ("char_wb_2_4", dict(analyzer="char_wb", ngram_range=(2, 4)), {"analyzer": "char_wb", "ngram": [2, 4]}),
    ("char_wb_1_3_max_features", dict(analyzer="char_wb", ngram_range=(1, 3), max_features=31), {"analyzer": "char_wb", "ngram": [1, 3], "max_features": 31}),
    ("char_1_3", dict(analyzer="char", ngram_range=(1, 3)), {"analyzer": "char", "ngram": [1, 3]}),
]

HASHING = [
    ("hashing_signed", dict(analyzer="word", n_features=64), {"n_features": 64}),
    ("hashing_unsigned_1_2", dict(analyzer="word", ngram_range=(1, 2), n_features=128, alternate_sign=False), {"ngram": [1, 2], "n_features": 128, "signed": False}),
    ("hashing_char_wb", dict(analyzer="char_wb", ngram_range=(2, 3), n_features=256), {"analyzer": "char_wb", "ngram": [2, 3], "n_features": 256}),
]


def no_tie_at_the_cut(vec, docs):
    """scikit-learn picks among terms of equal frequency at the max_features cut with
    numpy's unstable argsort; the fixture must not depend on that choice."""
    params = {k: v for k, v in vec.get_params().items() if k in CountVectorizer().get_params()}
    counts = CountVectorizer(**{**params, "max_features": None}).fit_transform(docs)
    tfs = sorted(counts.sum(axis=0).A1, reverse=True)
    limit = vec.max_features
    assert len(tfs) <= limit or tfs[limit - 1] != tfs[limit], f"a tie at the cut: {tfs[:limit + 3]}"


def rows(x):
    """A sparse matrix as rows of [column, value] (the nonzero entries, by column)."""
    x = x.tocsr()
    x.sort_indices()
    return [[[int(c), round(float(v), 9)] for c, v in zip(x.indices[x.indptr[r]:x.indptr[r + 1]], x.data[x.indptr[r]:x.indptr[r + 1]]) if v != 0]
            for r in range(x.shape[0])]


def main():
    out = {"sklearn": sklearn.__version__, "train": TRAIN, "test": TEST, "cases": []}
    for name, params, ours in CASES:
        vec = TfidfVectorizer(**params)
        if vec.max_features:
            no_tie_at_the_cut(vec, TRAIN)
        train = rows(vec.fit_transform(TRAIN))
        test = rows(vec.transform(TEST))
        out["cases"].append({
            "name": name,
            "features": {"kind": "tfidf", **ours},
            "vocabulary": list(vec.get_feature_names_out()),
            "idf": [round(float(v), 12) for v in vec.idf_],
            "train": train,
            "test": test,
        })
    for name, params, ours in HASHING:
        vec = HashingVectorizer(**params)
        out["cases"].append({
            "name": name,
            "features": {"kind": "hashing", **ours},
            "train": rows(vec.transform(TRAIN)),
            "test": rows(vec.transform(TEST)),
        })
    with open("text.json", "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
