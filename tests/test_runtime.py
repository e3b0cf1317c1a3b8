"""Process-wide CPU settings: threads and the allocator (scfront.runtime)."""

from __future__ import annotations

import os

import pytest
import torch

from scfront.cli import main
from scfront.runtime import OPT_IN, configure_cpu


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_are_set(restore_threads) -> None:
    applied = configure_cpu(1)
    assert applied["threads"] == 1 and torch.get_num_threads() == 1


def test_huge_pages_are_not_requested_once_torch_is_imported(monkeypatch) -> None:
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    applied = configure_cpu(allocator=True)
    assert applied["huge_pages"] is False and "THP_MEM_ALLOC_ENABLE" not in os.environ


def test_allocator_is_opt_in(monkeypatch) -> None:
    monkeypatch.delenv(OPT_IN, raising=False)
    assert configure_cpu() == {"huge_pages": False, "keep_freed_memory": False, "threads": None}
    monkeypatch.setenv(OPT_IN, "0")
    assert configure_cpu()["keep_freed_memory"] is False


def test_invalid_thread_count() -> None:
    with pytest.raises(ValueError, match="threads"):
        configure_cpu(0)


def test_cli_threads_option(restore_threads, capsys) -> None:
    assert main(["--threads", "0", "data", "info", "--data-root", "."]) == 2
    assert "--threads must be an integer >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--threads", "1", "--version"])
    assert exc.value.code == 0
