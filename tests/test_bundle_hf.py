"""Issue 15: Hugging Face snapshots (vLLM's models) in an air-gap bundle. The Hub cannot be
reached here, so a STAND-IN HUB (static files laid out as the Hub's API and resolve URLs, on a
local range server) answers `airig bundle`'s real requests: the listing at a commit with each
LFS file's sha256, and the files. On the box, the vllm role fetches each file from the bundle and
checks it (its model_files tasks run on localhost)."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airig import bundle, profiles
from airig.errors import InputError
from tests.conftest import play_tasks
from tests.mirror.build import RangeHandler

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO_ID = "acme/tiny-llm"
FILES = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
    "tokenizer.json": b'{"model": {"type": "WordLevel"}}',
    "model-00001-of-00002.safetensors": bytes(range(256)) * 512,
    "model-00002-of-00002.safetensors": bytes(range(255, -1, -1)) * 256,
    "original/consolidated.00.pth": b"not for vLLM" * 100,
}
LFS = {n for n in FILES if n.endswith((".safetensors", ".pth"))}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hub(root: Path, tamper: str | None = None, names: dict[str, bytes] | None = None) -> None:
    """The stand-in Hub's files: the API listing and the resolve URLs."""
    files = names or FILES
    siblings: list[dict[str, Any]] = []
    for name, data in files.items():
        entry: dict[str, Any] = {"rfilename": name, "size": len(data)}
        if name in LFS:
            entry["lfs"] = {"sha256": sha(data), "size": len(data)}
        siblings.append(entry)
        out = root / REPO_ID / "resolve" / COMMIT / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data + (b"!" if name == tamper else b""))
    api = root / "api" / "models" / REPO_ID / "revision"
    api.mkdir(parents=True, exist_ok=True)
    listing = json.dumps({"id": REPO_ID, "sha": COMMIT, "siblings": siblings})
    (api / COMMIT).write_text(listing)
    (api / "main").write_text(listing)


@pytest.fixture
def stand_in_hub(tmp_path: Path):  # type: ignore[no-untyped-def]
    root = tmp_path / "hub"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def vllm_profile(revision: str | None = COMMIT) -> profiles.Profile:
    model = {"name": "llama-3.1-8b", "quant": "FP16", "engine": "vllm", "source": REPO_ID}
    if revision:
        model["revision"] = revision
    raw = copy.deepcopy(profiles.load("team", ()).raw)
    raw["models"] = [model]
    return profiles.from_data(raw)


def plan_for(url: str, revision: str | None = COMMIT, allow: bool = False) -> bundle.Plan:
    plan = bundle.Plan(
        "t", {"distro": "debian", "version": "12", "release": "bookworm", "arch": "amd64"}
    )
    bundle.plan_models(plan, vllm_profile(revision), allow, {"airig_hf_endpoint": url})
    return plan


def test_a_snapshot_is_listed_at_its_commit_with_the_hubs_sha256(stand_in_hub) -> None:  # type: ignore[no-untyped-def]
    root, url = stand_in_hub
    hub(root)
    plan = plan_for(url)
    got = {i.path: i for i in plan.items}
    base = f"hf/{REPO_ID}/{COMMIT}"
    # vLLM loads the safetensors; Meta's original checkpoints are left out.
    assert sorted(got) == sorted(f"{base}/{n}" for n in FILES if not n.startswith("original/"))
    weights = got[f"{base}/model-00001-of-00002.safetensors"]
    assert weights.sha256 == sha(FILES["model-00001-of-00002.safetensors"])
    assert weights.url == f"{url}/{REPO_ID}/resolve/{COMMIT}/model-00001-of-00002.safetensors"
    assert got[f"{base}/config.json"].sha256 is None  # pinned by the commit in its URL
    assert plan.provides["hf"]["llama-3.1-8b"]["revision"] == COMMIT


def test_build_then_the_box_is_pointed_at_each_file_and_its_sha256(stand_in_hub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root, url = stand_in_hub
    hub(root)
    plan = plan_for(url)
    out = tmp_path / "bundle"
    bundle.build(plan, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["provides"]["hf"]["llama-3.1-8b"]["path"] == f"hf/{REPO_ID}/{COMMIT}"
    spec = {"name": "t", "models": [{"name": "llama-3.1-8b", "source": REPO_ID}]}
    got = bundle.provision_vars(manifest, "http://127.0.0.1:8767", spec)
    files = {f["path"]: f for f in got["vllm_model_files"]}
    assert sorted(files) == sorted(n for n in FILES if not n.startswith("original/"))
    for name, f in files.items():
        assert f["sha256"] == sha(FILES[name])
        assert f["url"] == f"http://127.0.0.1:8767/hf/{REPO_ID}/{COMMIT}/{name}"


def test_a_weight_file_that_is_not_the_hubs_is_not_kept(stand_in_hub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root, url = stand_in_hub
    hub(root, tamper="model-00002-of-00002.safetensors")
    with pytest.raises(bundle.BundleError, match=r"model-00002-of-00002\.safetensors"):
        bundle.build(plan_for(url), tmp_path / "bundle")


def test_no_revision_needs_consent_and_then_takes_mains_commit(stand_in_hub) -> None:  # type: ignore[no-untyped-def]
    root, url = stand_in_hub
    hub(root)
    with pytest.raises(InputError, match="allow-unpinned"):
        plan_for(url, revision=None)
    plan = plan_for(url, revision=None, allow=True)
    assert plan.provides["hf"]["llama-3.1-8b"]["revision"] == COMMIT


def test_a_listing_with_a_path_outside_the_snapshot_is_refused(stand_in_hub) -> None:  # type: ignore[no-untyped-def]
    root, url = stand_in_hub
    hub(root, names={"../../etc/passwd": b"x", "config.json": b"{}"})
    with pytest.raises(bundle.BundleError, match="not a plain relative path"):
        plan_for(url)


def test_the_vllm_role_fetches_and_checks_each_file(stand_in_hub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root, url = stand_in_hub
    hub(root)
    names = [n for n in FILES if not n.startswith("original/")]
    wanted = [
        {"path": n, "url": f"{url}/{REPO_ID}/resolve/{COMMIT}/{n}", "sha256": sha(FILES[n])}
        for n in names
    ]
    model_dir = tmp_path / "models" / "hf" / "llama-3.1-8b"
    task = {
        "name": "model files",
        "ansible.builtin.include_role": {"name": "airig.rig.vllm", "tasks_from": "model_files"},
    }
    extra = {"vllm_model_files": wanted, "vllm__model_dir": str(model_dir)}
    out = play_tasks(tmp_path, [task], extra)
    assert out.returncode == 0, out.stdout[-3000:]
    for n in names:
        assert (model_dir / n).read_bytes() == FILES[n]
    again = play_tasks(tmp_path, [task], extra)
    assert again.returncode == 0 and "changed=0" in again.stdout
    bad = [{**wanted[0], "sha256": "0" * 64}]
    (model_dir / wanted[0]["path"]).unlink()
    out = play_tasks(tmp_path, [task], {**extra, "vllm_model_files": bad})
    assert out.returncode != 0 and "checksum" in out.stdout.lower()
    assert not (model_dir / wanted[0]["path"]).exists()


@pytest.mark.parametrize(
    "entry",
    [
        {"path": "../../etc/cron.d/x", "url": "http://127.0.0.1:8767/x", "sha256": "0" * 64},
        {"path": ".hidden", "url": "http://127.0.0.1:8767/x", "sha256": "0" * 64},
        {"path": "a", "url": "file:///etc/shadow", "sha256": "0" * 64},
        {"path": "a", "url": "http://127.0.0.1:8767/x", "sha256": "0" * 63 + "\n"},
    ],
)
def test_the_vllm_role_refuses_bad_model_files(tmp_path, entry) -> None:  # type: ignore[no-untyped-def]
    profile = vllm_profile().raw
    task = {
        "name": "validate",
        "ansible.builtin.include_role": {"name": "airig.rig.vllm", "tasks_from": "validate"},
    }
    out = play_tasks(tmp_path, [task], {"profile_spec": profile, "vllm_model_files": [entry]})
    assert out.returncode != 0 and "vllm_model_files entries need" in out.stdout, out.stdout[-2000:]
