"""Text classification's baseline: n-gram tf-idf + logistic regression (scikit-learn), with
word 1-2-grams or character 1-4-grams (within word boundaries) and the regularisation chosen
on the dev split — what a practitioner fits first."""

from __future__ import annotations

from . import Baseline, Unavailable, needs

__all__ = ["TfidfLogistic"]

# (what the name says, TfidfVectorizer's analyzer and n-gram range)
FEATURES = {"word 1-2-gram": ("word", (1, 2)), "char 1-4-gram": ("char_wb", (1, 4))}
STRENGTHS = (1.0, 10.0)  # LogisticRegression's C tried (inverse regularisation)


class TfidfLogistic(Baseline):
    name = "n-gram tf-idf + logistic regression"

    def fit(self, train: list, dev: list) -> "TfidfLogistic":
        TfidfVectorizer = needs("sklearn.feature_extraction.text", "scikit-learn").TfidfVectorizer
        LogisticRegression = needs("sklearn.linear_model", "scikit-learn").LogisticRegression
        labels = [str(y) for _, y in train]
        if len(set(labels)) < 2:
            raise Unavailable("one class in the training split")
        gold = [str(y) for _, y in dev]
        best = None
        for what, (analyzer, ngrams) in FEATURES.items():
            vec = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True, lowercase=True)
            try:
                x = vec.fit_transform([t for t, _ in train])
            except ValueError:  # (no features: e.g. texts without word characters)
                continue
            xd = vec.transform([t for t, _ in dev])
            for c in STRENGTHS:
                model = LogisticRegression(C=c, max_iter=1000).fit(x, labels)
                acc = float((model.predict(xd) == gold).mean()) if gold else 0.0
                if best is None or acc > best[0]:
                    best = (acc, what, c, vec, model)
        if best is None:
            raise Unavailable("no word or character features in the training texts")
        _, what, c, self.vectorizer, self.model = best
        self.name = f"{what} tf-idf + logistic regression (C={c:g})"
        return self

    def predict(self, records: list) -> list:
        return [str(p) for p in self.model.predict(self.vectorizer.transform([t for t, _ in records]))]
