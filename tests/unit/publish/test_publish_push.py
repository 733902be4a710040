"""Push of an exported folder to the Hugging Face Hub, against a fake HfApi (no network, ever)."""

import os
import re

import pytest
from publish_helpers import TOKEN

from speechbrain_ext.publish import PublishError, push_model
from speechbrain_ext.publish.cli import main


class FakeHub:
    """Records HfApi calls; ``remote`` is the repo's file list (None: the repo does not exist)."""

    def __init__(self, monkeypatch, remote=None, fail=None):
        from huggingface_hub import HfApi

        self.calls, self.remote, self.fail = [], remote, fail
        for name in ("list_repo_files", "create_repo", "create_branch", "upload_folder"):
            monkeypatch.setattr(HfApi, name, self._method(name))

    def _method(self, name):
        fake = self

        def method(api, *args, **kwargs):
            fake.calls.append((name, args, kwargs))
            if fake.fail is not None:
                raise fake.fail
            if name == "list_repo_files":
                if fake.remote is None:
                    raise _not_found()
                return list(fake.remote)
            if name == "upload_folder":
                return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/1"})()
            return None

        return method

    def names(self):
        return [c[0] for c in self.calls]


def _response(status):
    import httpx2

    return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/models/me/model"))


def _not_found():
    from huggingface_hub.errors import RepositoryNotFoundError

    return RepositoryNotFoundError("404 repository not found", response=_response(404))


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return TOKEN


def test_push_dry_run_lists_files_and_card_without_network_or_token(exported, monkeypatch, capsys):
    import huggingface_hub

    _, out = exported
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: pytest.fail("dry run must not read the token"))
    assert main(["push", out, "--repo-id", "me/ecapa-synthemo", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "would upload" in printed and "me/ecapa-synthemo" in printed
    assert re.search(r"embedding_model\.ckpt\s+[\d,]+ B", printed)
    assert "library_name: speechbrain" in printed  # the card


def test_push_creates_repo_and_uploads_with_stored_token(exported, token, monkeypatch, capsys):
    _, out = exported
    fake = FakeHub(monkeypatch, remote=None)
    assert main(["push", out, "--repo-id", "me/model", "--private"]) == 0
    assert fake.names() == ["list_repo_files", "create_repo", "upload_folder"]
    create = fake.calls[1]
    assert create[1] == ("me/model",) and create[2]["private"] is True
    upload = fake.calls[2][2]
    assert upload["repo_id"] == "me/model" and upload["folder_path"] == out and upload["delete_patterns"] is None
    printed = capsys.readouterr()
    assert "created and uploaded" in printed.out
    assert TOKEN not in printed.out + printed.err  # never printed


def test_push_updates_own_repo_and_refuses_other_content(exported, token, monkeypatch, capsys):
    _, out = exported
    fake = FakeHub(monkeypatch, remote=[".gitattributes", "hyperparams.yaml", "README.md"])
    result = push_model(out, "me/model", revision="v1")
    assert fake.names() == ["list_repo_files", "upload_folder"] and result["deleted"] == []
    assert fake.calls[1][2]["revision"] == "v1"

    fake = FakeHub(monkeypatch, remote=[".gitattributes", "pytorch_model.bin", "config.json"])
    other = r"already holds other content \(config.json, pytorch_model.bin\).*--overwrite"
    with pytest.raises(PublishError, match=other):
        push_model(out, "me/model")
    assert "upload_folder" not in fake.names()
    result = push_model(out, "me/model", overwrite=True)
    assert fake.calls[-1][2]["delete_patterns"] == ["config.json", "pytorch_model.bin"]
    assert result["deleted"] == ["config.json", "pytorch_model.bin"]


def test_push_errors_missing_token_no_network_rejected_token(exported, token, monkeypatch, capsys):
    import httpx2
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    _, out = exported
    FakeHub(monkeypatch, fail=httpx2.ConnectError("[Errno -3] Temporary failure in name resolution"))
    with pytest.raises(PublishError, match="cannot reach the Hugging Face Hub.*nothing was uploaded"):
        push_model(out, "me/model")
    FakeHub(monkeypatch, fail=HfHubHTTPError("401 Unauthorized", response=_response(401)))
    assert main(["push", out, "--repo-id", "me/model"]) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "hf auth login" in err and TOKEN not in err

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    fake = FakeHub(monkeypatch)
    with pytest.raises(PublishError, match="no Hugging Face token.*hf auth login.*HF_TOKEN"):
        push_model(out, "me/model")
    assert fake.calls == []
    with pytest.raises(PublishError, match="has no hyperparams.yaml"):
        push_model(os.path.dirname(out), "me/model", dry_run=True)
    with pytest.raises(PublishError, match="user/name"):
        push_model(out, "not a repo id", dry_run=True)
