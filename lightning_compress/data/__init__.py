"""LightningDataModules for text classification and regression, following the batch and TaskSpec contracts of
``docs/architecture.md``: dict batches with ``input_ids``, ``attention_mask``, ``token_type_ids``, ``labels``, ``idx``,
and a ``task_spec`` available right after construction.

* :class:`GlueDataModule` - the nine GLUE tasks (local tsv release or the hub).
* :class:`CrossLingualDataModule` - XNLI / PAWS-X / UD POS / PAN-X NER (and XGLUE NC, QAM, QADSM, WPR from the hub):
  train on English, evaluate every language zero-shot.
* :class:`TextFolderDataModule` - one folder of ``.txt`` files per class (BBC News by default).
* :class:`TokenizedDataModule` - their shared base (tokenize once, cache on disk, dynamic padding).
"""

from lightning_compress.data.base import TokenizedDataModule
from lightning_compress.data.crosslingual import CROSSLINGUAL_TASKS, CrossLingualDataModule
from lightning_compress.data.examples import Examples
from lightning_compress.data.glue import GLUE_TASKS, GlueDataModule
from lightning_compress.data.text_folder import TextFolderDataModule
from lightning_compress.data.tokenized import TokenizedDataset

__all__ = [
    "CROSSLINGUAL_TASKS",
    "GLUE_TASKS",
    "CrossLingualDataModule",
    "Examples",
    "GlueDataModule",
    "TextFolderDataModule",
    "TokenizedDataModule",
    "TokenizedDataset",
]
