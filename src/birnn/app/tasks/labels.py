"""Labels and tags checked against what a model knows, before any training or scoring."""

from __future__ import annotations

__all__ = ["check_known_labels"]


def check_known_labels(records, known, what: str, tagging: bool = False) -> None:
    """Every label (or tag) of ``records`` is in ``known``, else ValueError naming ``file:line``."""
    from ...data import where

    known = set(known)
    for i, (_, label) in enumerate(records):
        labels = (label or []) if tagging else ([] if label is None else [str(label)])
        for j, lab in enumerate(labels):
            if lab not in known:
                shown = ", ".join(sorted(known)[:12]) + (", ..." if len(known) > 12 else "")
                at = where(records, i, j if tagging else None)  # a tag: its token's own line
                raise ValueError(f"{at}: {'tag' if tagging else 'label'} {lab!r} of the {what} "
                                 f"data is not one the model knows ({shown})")
