"""Model store: register, resolve, never overwrite, remove, export/import, safe loading."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dccseg.errors import DccsegError
from dccseg.networks import CoarseConfig, RefineConfig, build_coarse_net, build_refine_net
from dccseg.organs import ORGANS
from dccseg.preprocess import IntensityConfig
from dccseg.store import ModelCard, ModelStore, bump_version, dataset_hash, load_model, organ_table


def make_card(name: str = "dccseg-abdomen", version: str = "1.0.0", **changes) -> ModelCard:
    fields = dict(
        name=name,
        version=version,
        preprocessing={
            "intensity": IntensityConfig().to_dict(),
            "coarse_spacing": [4.0, 4.0, 4.0],
            "refine_spacing": [1.0, 1.0],
            "refine_slice_thickness": None,
            "patch_size": 32,
            "patches_per_slice": 5,
            "fast_patches_per_slice": 1,
        },
        architecture={"coarse": CoarseConfig.tiny().to_dict(), "refine": RefineConfig.tiny().to_dict()},
        training={"data": {"cases": 2}, "data_hash": "sha256:0", "stages": {}, "pretraining": None},
        metrics={"dice_mean": 0.5},
    )
    fields.update(changes)
    return ModelCard(**fields)


def make_weights(seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    return {
        "coarse": build_coarse_net(CoarseConfig.tiny()).state_dict(),
        "refine": build_refine_net(RefineConfig.tiny()).state_dict(),
    }


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "user", builtin_root=tmp_path / "builtin")


@pytest.fixture(scope="module")
def weights() -> dict[str, dict[str, torch.Tensor]]:
    return make_weights()


def test_register_list_and_resolve(store: ModelStore, weights) -> None:
    store.register(make_card(version="1.0.0"), weights)
    store.register(make_card(version="1.10.0"), weights)
    store.register(make_card(version="1.2.0"), weights)
    store.register(make_card(name="other", version="0.1.0"), weights)
    assert [e.ref for e in store.list()] == ["dccseg-abdomen@1.10.0", "dccseg-abdomen@1.2.0", "dccseg-abdomen@1.0.0", "other@0.1.0"]
    assert store.resolve(None).ref == "dccseg-abdomen@1.10.0"  # semantic, not string, order
    assert store.resolve("dccseg-abdomen").version == "1.10.0"
    assert store.resolve("dccseg-abdomen@1.2.0").version == "1.2.0"
    folder = store.root / "other" / "0.1.0"
    assert store.resolve(str(folder)).ref == "other@0.1.0"
    assert sorted(p.name for p in folder.iterdir()) == ["coarse.safetensors", "model.json", "refine.safetensors"]
    assert store.next_version("dccseg-abdomen") == "1.11.0"
    assert store.next_version("new-model") == "0.1.0"
    assert store.next_version("dccseg-abdomen", "major") == "2.0.0"


def test_unknown_ref_lists_available(store: ModelStore, weights) -> None:
    with pytest.raises(DccsegError, match="no models are installed"):
        store.resolve(None)
    store.register(make_card(name="other", version="0.1.0"), weights)
    with pytest.raises(DccsegError, match=r"available: other@0\.1\.0 \(run `dccseg models list`\)"):
        store.resolve("missing@1.0.0")


def test_register_never_overwrites(store: ModelStore, weights) -> None:
    store.register(make_card(version="1.0.0"), weights)
    before = (store.root / "dccseg-abdomen" / "1.0.0" / "refine.safetensors").read_bytes()
    with pytest.raises(DccsegError, match=r"already exists .* use version 1\.1\.0"):
        store.register(make_card(version="1.0.0", description="new"), make_weights(seed=1))
    assert (store.root / "dccseg-abdomen" / "1.0.0" / "refine.safetensors").read_bytes() == before
    assert [p.name for p in (store.root / "dccseg-abdomen").iterdir()] == ["1.0.0"]  # no staging left over


def test_register_refuses_weights_that_do_not_match_the_card(store: ModelStore, weights) -> None:
    card = make_card(architecture={"coarse": CoarseConfig(channels=(4, 8)).to_dict(), "refine": RefineConfig.tiny().to_dict()})
    with pytest.raises(DccsegError, match="damaged or from an incompatible"):
        store.register(card, weights)
    assert store.list() == []
    assert not any((store.root / "dccseg-abdomen").iterdir())


def test_user_store_wins_on_equal_version_and_builtin_is_read_only(store: ModelStore, weights) -> None:
    builtin = ModelStore(store.builtin_root, builtin_root=store.root / "none")
    builtin.register(make_card(version="1.0.0", description="shipped"), weights)
    assert store.resolve(None).builtin
    with pytest.raises(DccsegError, match="built-in model and cannot be removed"):
        store.remove("dccseg-abdomen@1.0.0")
    store.register(make_card(version="1.0.0", description="mine"), weights)
    assert not store.resolve("dccseg-abdomen@1.0.0").builtin
    assert [e.builtin for e in store.list()] == [False, True]
    store.remove("dccseg-abdomen@1.0.0")
    assert store.resolve(None).card.description == "shipped"
    assert not (store.root / "dccseg-abdomen").exists()


def test_export_import_round_trip(store: ModelStore, weights, tmp_path: Path) -> None:
    store.register(make_card(version="2.0.0"), weights)
    archive = store.export("dccseg-abdomen", tmp_path / "model.zip")
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["coarse.safetensors", "model.json", "refine.safetensors"]
    with pytest.raises(DccsegError, match="already exists"):
        store.export("dccseg-abdomen", archive)
    other = ModelStore(tmp_path / "other", builtin_root=tmp_path / "none")
    entry = other.import_(archive)
    assert entry.ref == "dccseg-abdomen@2.0.0" and not entry.builtin
    for part in ("coarse", "refine"):
        assert entry.weight_path(part).read_bytes() == (store.root / "dccseg-abdomen" / "2.0.0" / f"{part}.safetensors").read_bytes()
    with pytest.raises(DccsegError, match="never overwritten; use version 2.1.0"):
        other.import_(archive)
    third = ModelStore(tmp_path / "third", builtin_root=tmp_path / "none")
    assert third.import_(entry.path).card.to_dict() == entry.card.to_dict()  # a folder imports too


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_import_refuses_pickles_traversal_and_strays(store: ModelStore, weights, tmp_path: Path) -> None:
    store.register(make_card(), weights)
    folder = store.resolve(None).path
    good = {p.name: p.read_bytes() for p in folder.iterdir()}
    cases = {
        "pickle": ({**good, "refine.pt": b"\x80\x04."}, "pickle-based"),
        "traversal": ({**good, "../evil.json": b"{}"}, "outside the archive"),
        "absolute": ({**good, "/etc/evil.json": b"{}"}, "outside the archive"),
        "stray": ({**good, "notes.txt": b"hi"}, "unexpected file"),
        "missing": ({k: v for k, v in good.items() if k != "refine.safetensors"}, "lacks refine.safetensors"),
    }
    target = ModelStore(tmp_path / "target", builtin_root=tmp_path / "none")
    for name, (members, message) in cases.items():
        with pytest.raises(DccsegError, match=message):
            target.import_(_zip(tmp_path / f"{name}.zip", members))
    assert target.list() == []
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name, data in good.items():
        (pickled / name).write_bytes(data)
    (pickled / "coarse.ckpt").write_bytes(b"\x80\x04.")
    with pytest.raises(DccsegError, match="pickle-based"):
        target.import_(pickled)


def test_env_var_selects_user_store(tmp_path: Path, monkeypatch, weights) -> None:
    monkeypatch.setenv("DCCSEG_MODEL_STORE", str(tmp_path / "env-store"))
    assert ModelStore().root == tmp_path / "env-store"
    ModelStore(builtin_root=tmp_path / "none").register(make_card(version="0.3.0"), weights)
    assert (tmp_path / "env-store" / "dccseg-abdomen" / "0.3.0" / "model.json").is_file()


def test_load_model_restores_weights(tmp_path: Path, weights) -> None:
    store = ModelStore(tmp_path / "user", builtin_root=tmp_path / "none")
    store.register(make_card(), weights)
    model = load_model("dccseg-abdomen@1.0.0", "cpu", store=store)
    assert model.device == torch.device("cpu") and not model.refine.training and not model.coarse.training
    for part, net in (("coarse", model.coarse), ("refine", model.refine)):
        state = net.state_dict()
        assert all(torch.equal(state[k], v) for k, v in weights[part].items())
    with torch.no_grad():
        out = model.refine(torch.zeros(1, 2, 32, 32))
    assert out.shape == (1, 2, 32, 32)


def test_damaged_weights_give_a_clear_error(tmp_path: Path, weights) -> None:
    store = ModelStore(tmp_path / "user", builtin_root=tmp_path / "none")
    entry = store.register(make_card(), weights)
    refine = entry.weight_path("refine")
    tensors = dict(weights["refine"])
    tensors.pop(next(iter(tensors)))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(refine))
    with pytest.raises(DccsegError, match=r"dccseg-abdomen@1\.0\.0 is damaged or from an incompatible dccseg version .*re-import it"):
        load_model(None, "cpu", store=store)
    refine.write_bytes(b"not a safetensors file")
    with pytest.raises(DccsegError, match="refine.safetensors is unreadable"):
        load_model(None, "cpu", store=store)


def test_card_validation() -> None:
    with pytest.raises(DccsegError, match="semantic version"):
        make_card(version="1.0")
    with pytest.raises(DccsegError, match="invalid model name"):
        make_card(name="a/b")
    with pytest.raises(DccsegError, match="does not match dccseg's organ table"):
        make_card(organs=[{"label": 2, "key": "liver", "name": "liver"}])
    subset = make_card(organs=organ_table([ORGANS[5], ORGANS[0]]))
    assert [o.key for o in subset.organ_objects] == ["liver", "spleen"]
    data = make_card().to_dict()
    assert ModelCard.from_dict(json.loads(json.dumps(data))).to_dict() == json.loads(json.dumps(data))
    with pytest.raises(DccsegError, match="unknown fields"):
        ModelCard.from_dict({**data, "surprise": 1})
    with pytest.raises(DccsegError, match="preprocessing lacks patch_size"):
        make_card(preprocessing={k: v for k, v in data["preprocessing"].items() if k != "patch_size"})
    assert make_card(preprocessing={**data["preprocessing"], "fusion_trust": 0.3}).preprocessing["fusion_trust"] == 0.3  # older cards lack it: plain vote
    with pytest.raises(DccsegError, match="fusion_trust must be a number in"):
        make_card(preprocessing={**data["preprocessing"], "fusion_trust": 0.7})
    assert make_card(preprocessing={**data["preprocessing"], "coarse_scales": [0.9, 1]}).preprocessing["coarse_scales"] == [0.9, 1]  # older cards lack it: one scale
    for scales in ([0.9], [1.0, 1.0], [0.2, 1.0], "0.9,1", [True, 1.0]):
        with pytest.raises(DccsegError, match="coarse_scales must be a list of distinct numbers"):
            make_card(preprocessing={**data["preprocessing"], "coarse_scales": scales})
    assert bump_version("1.2.3", "patch") == "1.2.4" and bump_version(None, "minor") == "0.1.0"


def test_dataset_hash_is_content_based(tmp_path: Path) -> None:
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    first = dataset_hash([b, a])
    assert first == dataset_hash([a, b]) and first.startswith("sha256:")
    b.write_bytes(b"tw0")
    assert dataset_hash([a, b]) != first


def test_dataset_hash_of_a_dataset_follows_cases_and_phases(tmp_path: Path) -> None:
    from dccseg.dataset import Dataset
    from dccseg.io import write_image, write_labelmap
    from dccseg.phantoms.procedural import procedural_phantom

    ct, labels = procedural_phantom((8, 16, 16), phase="arterial", seed=0)
    write_image(ct, tmp_path / "ct.nii.gz")
    write_labelmap(labels, tmp_path / "lab.nii.gz")
    dataset = Dataset.create(tmp_path / "data", "d")
    case = dataset.add_case(tmp_path / "ct.nii.gz", tmp_path / "lab.nii.gz", "arterial", case_id="c1")
    dataset.save()
    first = dataset_hash(dataset)
    assert first == dataset_hash(Dataset.load(tmp_path / "data"))
    case.phase = "portal-venous"
    assert dataset_hash(dataset) != first


def test_a_held_back_version_is_never_the_default(store: ModelStore, weights) -> None:
    store.register(make_card(version="1.0.0"), weights)
    store.register(make_card(version="1.1.0", held_back="worse than its starting model on the held-out cases (0.80 -> 0.70)"), weights)
    assert store.resolve(None).version == "1.0.0" and store.resolve("dccseg-abdomen").version == "1.0.0"
    assert store.resolve("dccseg-abdomen@1.1.0").card.held_back.startswith("worse")
    assert store.next_version("dccseg-abdomen") == "1.2.0"
    assert ModelCard.from_dict(store.resolve("dccseg-abdomen@1.1.0").card.to_dict()).held_back
    assert "held_back" not in store.resolve("dccseg-abdomen").card.to_dict()
