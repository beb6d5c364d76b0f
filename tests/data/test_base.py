"""Shared DataModule machinery: batches, idx, dtypes, subsets, shuffling, tokenization cache, argument checks."""

from __future__ import annotations

import collections
import os
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from lightning_compress.data import CrossLingualDataModule, Examples, GlueDataModule, TokenizedDataset, base
from lightning_compress.data.examples import first_n, seeded_subset
from lightning_compress.data.tokenized import load_tokenized, save_tokenized, tokenize_examples
from tests.data.fixtures import write_glue_task, write_xnli


def make_examples(n: int = 10, pairs: bool = True, regression: bool = False) -> Examples:
    return Examples(
        texts=[f"first text {i}" for i in range(n)],
        pairs=[f"second {i}" for i in range(n)] if pairs else None,
        labels=[i * 0.5 for i in range(n)] if regression else [i % 3 for i in range(n)],
        fingerprint="fp",
    )


@pytest.fixture
def sst2(tmp_path: Path, cache_dir: str) -> GlueDataModule:
    write_glue_task(tmp_path / "glue", "SST-2", n_train=40, n_dev=10)
    return GlueDataModule("sst2", data_dir=str(tmp_path / "glue"), batch_size=4, cache_dir=cache_dir)


def test_examples_reject_ragged_lists() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        Examples(["a", "b"], ["c"], [0, 1], "fp")


def test_select_records_the_selection_in_the_fingerprint() -> None:
    examples = make_examples()
    picked = examples.select([4, 1])
    assert picked.texts == ["first text 4", "first text 1"] and picked.labels == [1, 1]
    assert picked.fingerprint != examples.fingerprint != examples.select([1, 4]).fingerprint


def test_first_n_is_deterministic_and_seeded_subset_is_seeded() -> None:
    examples = make_examples(50)
    assert first_n(examples, 5).texts == examples.texts[:5]
    assert first_n(examples, None) is examples and first_n(examples, 99) is examples
    a, b, c = (seeded_subset(examples, 10, seed) for seed in (1, 1, 2))
    assert a.texts == b.texts and a.texts != c.texts and len(a) == 10
    positions = [examples.texts.index(t) for t in a.texts]
    assert positions == sorted(positions)  # file order kept


def test_tokenize_examples_flattens_pairs_and_truncates(session_tokenizer) -> None:
    data = tokenize_examples(session_tokenizer, make_examples(5), max_seq_length=8, text_prefix="query: ")
    assert set(data) == {"input_ids", "token_type_ids", "lengths", "labels"}
    assert data["input_ids"].dtype == torch.int32 and data["labels"].dtype == torch.int64
    assert int(data["lengths"].sum()) == data["input_ids"].numel() and data["lengths"].max() <= 8
    item = TokenizedDataset(data)[2]
    assert session_tokenizer.decode(item["input_ids"]).startswith("[CLS] query : first")
    assert item["attention_mask"] == [1] * len(item["input_ids"]) and item["idx"] == 2 and item["labels"] == 2


def test_regression_labels_are_float(session_tokenizer) -> None:
    data = tokenize_examples(session_tokenizer, make_examples(4, regression=True), 16, regression=True)
    assert data["labels"].dtype == torch.float32 and isinstance(TokenizedDataset(data)[3]["labels"], float)


def test_dataset_index_out_of_range(session_tokenizer) -> None:
    dataset = TokenizedDataset(tokenize_examples(session_tokenizer, make_examples(3, pairs=False), 16))
    assert len(dataset) == 3 and "token_type_ids" in dataset[0]
    with pytest.raises(IndexError):
        dataset[3]


def test_cache_file_round_trip_and_garbage_is_ignored(tmp_path: Path, session_tokenizer) -> None:
    data = tokenize_examples(session_tokenizer, make_examples(3), 16)
    path = tmp_path / "sub" / "x.pt"
    save_tokenized(path, data)
    assert torch.equal(load_tokenized(path)["input_ids"], data["input_ids"])
    assert list(path.parent.iterdir()) == [path]  # no temporary files left
    path.write_bytes(b"not a torch file")
    assert load_tokenized(path) is None and load_tokenized(tmp_path / "missing.pt") is None


def test_cache_folder_under_a_regular_file_names_the_folder_and_cache_dir(tmp_path: Path, session_tokenizer) -> None:
    data = tokenize_examples(session_tokenizer, make_examples(3), 16)
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(
        NotADirectoryError,
        match=r"Cannot write the tokenization cache into the folder '.*a_file/cache': .*HINT: pass a writable folder "
        r"as the data module's `cache_dir` argument",
    ):
        save_tokenized(tmp_path / "a_file" / "cache" / "x.pt", data)
    write_glue_task(tmp_path / "glue", "SST-2", n_train=4, n_dev=2)
    dm = GlueDataModule("sst2", data_dir=str(tmp_path / "glue"), cache_dir=str(tmp_path / "a_file" / "cache"))
    with pytest.raises(NotADirectoryError, match=r"folder '.*a_file/cache'.*`cache_dir` argument"):
        dm.setup("fit")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache_folder_names_the_folder_and_cache_dir(tmp_path: Path, session_tokenizer) -> None:
    data = tokenize_examples(session_tokenizer, make_examples(3), 16)
    folder = tmp_path / "cache"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=r"tokenization cache into the folder '.*cache': .*`cache_dir` arg"):
            save_tokenized(folder / "x.pt", data)
    finally:
        folder.chmod(0o755)


def test_unwritable_cache_folder_error_as_root_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root ignores permissions, so the read-only folder's PermissionError is raised by a stand-in for mkstemp."""

    def read_only(**kwargs) -> None:
        raise PermissionError(13, "Permission denied", os.path.join(kwargs["dir"], "x.pt.tmp"))

    monkeypatch.setattr("lightning_compress.data.tokenized.tempfile.mkstemp", read_only)
    with pytest.raises(
        PermissionError, match=r"folder '.*cache': Permission denied \('.*x\.pt\.tmp'\)\. HINT: .*`cache_dir`"
    ):
        save_tokenized(tmp_path / "cache" / "x.pt", {})


def test_batches_follow_the_contract(sst2: GlueDataModule) -> None:
    sst2.setup("fit")
    batch = next(iter(sst2.train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels", "idx"}
    assert all(batch[k].dtype == torch.long for k in batch)
    assert batch["input_ids"].shape == batch["attention_mask"].shape and batch["input_ids"].shape[0] == 4
    for row, idx in enumerate(batch["idx"].tolist()):  # idx = position in the dataset
        item = sst2.train_dataset[idx]
        assert batch["input_ids"][row, : len(item["input_ids"])].tolist() == item["input_ids"]
        assert batch["labels"][row].item() == item["labels"]


def test_eval_batches_cover_the_split_in_order(sst2: GlueDataModule) -> None:
    sst2.setup("validate")
    loader = sst2.val_dataloader()
    assert loader.batch_size == 8  # 2 x batch_size by default
    assert torch.cat([b["idx"] for b in loader]).tolist() == list(range(10))


def test_train_shuffle_is_seeded(tmp_path: Path, cache_dir: str) -> None:
    write_glue_task(tmp_path / "glue", "SST-2", n_train=40, n_dev=4)

    def order(seed: int) -> list[int]:
        dm = GlueDataModule("sst2", data_dir=str(tmp_path / "glue"), batch_size=8, seed=seed, cache_dir=cache_dir)
        dm.setup("fit")
        return torch.cat([b["idx"] for b in dm.train_dataloader()]).tolist()

    first = order(1)
    assert sorted(first) == list(range(40)) and first != list(range(40))
    assert order(1) == first and order(2) != first


def test_max_samples(tmp_path: Path, cache_dir: str) -> None:
    write_glue_task(tmp_path / "glue", "SST-2", n_train=40, n_dev=10)
    dm = GlueDataModule(
        "sst2", data_dir=str(tmp_path / "glue"), max_train_samples=7, max_eval_samples=3, cache_dir=cache_dir
    )
    dm.setup("fit")
    assert len(dm.train_dataset) == 7 and len(dm.val_datasets[0]) == 3


def test_second_setup_reads_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache_dir: str) -> None:
    write_glue_task(tmp_path / "glue", "SST-2", n_train=20, n_dev=4)
    calls: list[int] = []
    real = base.tokenize_examples

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(base, "tokenize_examples", counting)
    make = lambda **kw: GlueDataModule("sst2", data_dir=str(tmp_path / "glue"), cache_dir=cache_dir, **kw)  # noqa: E731
    first = make()
    first.setup("fit")
    assert calls == [20, 4] and len(list(Path(cache_dir).glob("sst2-*.pt"))) == 2
    second = make()
    second.setup("fit")
    second.setup("test")  # test reuses dev: same content, no new tokenization
    assert calls == [20, 4]
    assert second.train_dataset[5] == first.train_dataset[5]
    make(max_seq_length=16).setup("fit")  # another length -> new key
    assert calls == [20, 4, 20, 4]
    train = tmp_path / "glue" / "SST-2" / "train.tsv"
    train.write_text(train.read_text() + "one more row\t1\n")  # changed bytes -> new key
    make().setup("fit")
    assert calls == [20, 4, 20, 4, 21]


def test_dataloaders_need_setup(sst2: GlueDataModule) -> None:
    with pytest.raises(RuntimeError, match=r"call `setup\('fit'\)`"):
        sst2.train_dataloader()


def test_hparams_hold_every_constructor_argument(sst2: GlueDataModule) -> None:
    assert sst2.hparams["task"] == "sst2" and sst2.hparams["batch_size"] == 4 and "cache_dir" in sst2.hparams


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, r"`GlueDataModule\(batch_size=0\)` is invalid: expected an int >= 1"),
        ({"batch_size": "32"}, TypeError, r"`GlueDataModule\(batch_size='32'\)` is invalid"),
        ({"max_train_samples": True}, TypeError, r"max_train_samples=True"),
        ({"eval_batch_size": -1}, ValueError, r"eval_batch_size=-1"),
        ({"tokenizer": None}, TypeError, r"`GlueDataModule\(tokenizer=None\)` is invalid: expected a str"),
        ({"data_dir": 3}, TypeError, r"data_dir=3"),
        ({"max_seq_length": 4}, ValueError, r"max_seq_length=4"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        GlueDataModule("sst2", **kwargs)


class _Probe(pl.LightningModule):
    """Bag-of-embeddings classifier that records the ``idx`` of every validation example per dataloader."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.embed = torch.nn.EmbeddingBag(vocab_size, 4)
        self.head = torch.nn.Linear(4, 3)
        self.seen: dict[int, list[int]] = collections.defaultdict(list)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(self.head(self.embed(batch["input_ids"])), batch["labels"])

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.seen[dataloader_idx].extend(batch["idx"].tolist())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_fit_with_one_val_loader_per_language(tmp_path: Path, cache_dir: str) -> None:
    write_xnli(tmp_path, ("en", "de", "fr"), n_dev=5)
    dm = CrossLingualDataModule(
        "xnli", data_dir=str(tmp_path), languages=["en", "de", "fr"], batch_size=4, num_workers=1, cache_dir=cache_dir
    )
    probe = _Probe(vocab_size=dm.hf_tokenizer.vocab_size)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(probe, datamodule=dm)
    assert trainer.global_step == 3  # 10 SNLI pairs / batch 4
    assert dm.test_datasets is None  # prepare_data/setup built only what `fit` needs
    assert {k: sorted(v) for k, v in probe.seen.items()} == {i: list(range(5)) for i in range(3)}


def _write_word_tokenizer(folder: Path, words: list[str]) -> None:
    """A word-level tokenizer whose vocabulary is ``words`` after the special tokens, saved into ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    special = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]"}
    PreTrainedTokenizerFast(tokenizer_object=backend, **special).save_pretrained(str(folder))
    (folder / "config.json").write_text('{"model_type": "bert"}')  # what makes it a model folder for the loader


def test_replaced_tokenizer_in_the_same_folder_gives_new_ids(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache_dir: str
) -> None:
    """The cache is keyed by the tokenizer's content: the same folder with another vocabulary re-tokenizes."""
    from lightning_compress.data import tokenized

    monkeypatch.setattr(base, "load_tokenizer", tokenized.load_tokenizer)  # the real loader, not the shared one
    write_glue_task(tmp_path / "glue", "SST-2", n_train=6, n_dev=2)
    text = (tmp_path / "glue" / "SST-2" / "train.tsv").read_text().lower()
    words = sorted(set(re.findall(r"\w+|[^\w\s]", text)))  # every word and punctuation mark: no [UNK]
    folder = tmp_path / "tokenizer"

    def first_example() -> tuple[list[int], list[int]]:
        """Ids served by the DataModule, and ids of the tokenizer now in the folder, for the first training text."""
        dm = GlueDataModule("sst2", data_dir=str(tmp_path / "glue"), tokenizer=str(folder), cache_dir=cache_dir)
        dm.setup("fit")
        text = dm.train_examples().texts[0]
        return dm.train_dataset[0]["input_ids"], tokenized.load_tokenizer(str(folder))(text)["input_ids"]

    _write_word_tokenizer(folder, words)
    before, expected = first_example()
    assert before == expected
    _write_word_tokenizer(folder, words[::-1])  # same folder and name, other ids
    after, expected = first_example()
    assert after == expected and after != before
