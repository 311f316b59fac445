"""birnn.data: readers for sequence formats, offline datasets, vocabularies, batching."""

from .datasets import DATASETS, DatasetUnavailable, SeriesSplits, Splits, dataset_status, load_dataset
from .encoding import (Batch, ForecastEncoder, SeriesEncoder, TaggingEncoder, TextEncoder, bucket_batches,
                       make_windows)
from .errors import DataFormatError
from .readers import FORMATS, Records, infer_format, read_lines, where
from .scaling import Standardizer
from .sources import TASK_FORMATS, load_source, read_source_file
from .tables import read_series_csv, read_text_csv
from .tagged import bio_tags, read_columns, read_conllu, read_wordtag
from .text import tokenize
from .ts import read_ts
from .vocab import Vocab

__all__ = [
    "DATASETS", "Batch", "DataFormatError", "DatasetUnavailable", "FORMATS", "ForecastEncoder", "Records",
    "SeriesEncoder", "bio_tags",
    "SeriesSplits", "Splits", "Standardizer", "TASK_FORMATS", "TaggingEncoder", "TextEncoder", "Vocab", "bucket_batches",
    "dataset_status", "infer_format", "load_dataset", "load_source", "make_windows", "read_columns", "read_conllu", "read_lines",
    "read_series_csv", "read_source_file", "read_text_csv", "read_ts", "read_wordtag", "tokenize", "where",
]
