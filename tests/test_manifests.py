"""The zoo manifests: every entry valid, broken entries rejected by name, sizes and labels checked against
independent references (timm and transformers models, the authors' reported sizes, ImageNet class facts)."""

from __future__ import annotations

import copy
import dataclasses
import re
import sys
import tomllib
from importlib import resources

import pytest
import timm
import torch

from swinzoo import manifest as mf
from swinzoo.config import SwinConfig
from swinzoo.images import Preprocessing
from swinzoo.manifest import (
    ManifestError,
    UnknownEntryError,
    count_parameters,
    get_entry,
    label_names,
    load_manifests,
    parse_entries,
    validate_all,
)

# Official presets (Swin-Transformer configs), written out here independently of the manifests.
PRESETS = {
    "tiny": (96, (2, 2, 6, 2), (3, 6, 12, 24)),
    "small": (96, (2, 2, 18, 2), (3, 6, 12, 24)),
    "base": (128, (2, 2, 18, 2), (4, 8, 16, 32)),
    "large": (192, (2, 2, 18, 2), (6, 12, 24, 48)),
}


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _timm_params(name: str, **kwargs) -> int:
    with torch.device("meta"):  # shapes only: no memory, no init cost
        return _n_params(timm.create_model(name, pretrained=False, **kwargs))


@pytest.fixture(scope="module")
def zoo() -> dict[str, mf.ZooEntry]:
    return load_manifests()


@pytest.fixture(scope="module")
def raw_tables() -> dict[str, list[dict]]:
    """The package manifests as plain TOML data, to derive broken variants from."""
    root = resources.files("swinzoo.manifests")
    return {f.name: tomllib.loads(f.read_text()) for f in root.iterdir() if f.name.endswith(".toml")}


# --------------------------------------------------------------------------------------------- whole zoo
def test_zoo_holds_every_official_checkpoint_listed_in_the_facts(zoo):
    kinds = {}
    for e in zoo.values():
        kinds[(e.family, e.kind)] = kinds.get((e.family, e.kind), 0) + 1
    # Rows of the facts tables: 17 Swin v1, 12 Swin V2, SimMIM v1 3 pretrain + 4 fine-tune, and 63 SimMIM V2
    # data-scaling rows, each with a pretrained and a fine-tuned file.
    assert kinds == {
        ("swin", "classification"): 17,
        ("swinv2", "classification"): 12,
        ("swin", "simmim-pretrain"): 3,
        ("swin", "simmim-finetune"): 4,
        ("swinv2", "simmim-pretrain"): 63,
        ("swinv2", "simmim-finetune"): 63,
    }
    for name, e in zoo.items():
        if e.kind == "simmim-pretrain" and e.family == "swinv2":
            assert zoo[name + "-ft"].pretrained_from == name


def test_every_entry_passes_validation_and_builds_its_config(zoo):
    validate_all(zoo.values())
    for e in zoo.values():
        cfg = e.config(num_labels=max(e.num_classes, 1))
        assert isinstance(cfg, SwinConfig)
        assert cfg.version == (1 if e.family == "swin" else 2)
        assert isinstance(e.preprocessing, Preprocessing)
        assert e.preprocessing.input_size == e.architecture.image_size


def test_names_follow_the_official_file_names(zoo):
    for e in zoo.values():
        stem = e.source.filename.removesuffix(".pth")
        if e.layout in ("official-swin", "official-swinv2"):
            assert e.name == stem.replace("_", "-")
        elif e.layout == "simmim-swinv2-pretrain":
            assert e.name == "simmim-" + stem.replace("_", "-")
        elif e.layout == "simmim-swinv2-finetune":
            assert e.name == "simmim-" + stem.removeprefix("finetune_").replace("_", "-") + "-ft"


def test_architectures_match_the_official_presets_named_in_the_entry(zoo):
    for e in zoo.values():
        size = next((s for s in PRESETS if f"-{s}-" in e.name), None)
        if size is None:  # huge / giant: not official presets
            continue
        dim, depths, heads = PRESETS[size]
        if "-c24-" in e.name:
            heads = (4, 8, 16, 32)
        a = e.architecture
        assert (a.embed_dim, a.depths, a.num_heads, a.patch_size) == (dim, depths, heads, 4), e.name


def test_sources_point_at_the_official_hosts_or_say_how_to_download(zoo):
    hosts = (
        "https://github.com/SwinTransformer/storage/releases/download/v",
        "https://huggingface.co/zdaxie/SimMIM/resolve/main/",
    )
    for e in zoo.values():
        s = e.source
        if e.layout.startswith("simmim-swin-"):  # Google Drive only
            assert s.urls == () and s.drive_id and "--source PATH" in s.manual_download, e.name
            assert s.drive_id in s.manual_download
        else:
            assert len(s.urls) == 1 and s.urls[0].startswith(hosts), e.name
            assert s.urls[0].endswith("/" + s.filename)
        assert s.pinned == bool(s.sha256)
        assert s.sha256 == "" or re.fullmatch(r"[0-9a-f]{64}", s.sha256)


def test_heads_and_label_sets_agree(zoo):
    for e in zoo.values():
        if e.kind == "simmim-pretrain":
            assert (e.num_classes, e.label_set) == (0, "none")
            assert e.simmim is not None and e.simmim.encoder_stride == 32 and e.simmim.mask_ratio == 0.6
            assert e.simmim.norm_target == (e.family == "swinv2")
        elif e.name.endswith("-22k"):
            assert (e.num_classes, e.label_set) == (21841, "imagenet-22k")
        else:
            assert (e.num_classes, e.label_set) == (1000, "imagenet-1k")


def test_preprocessing_follows_the_official_eval_recipe(zoo):
    # Swin-Transformer data/build.py: resize int(256/224 * size), centre-crop; TEST.CROP False (every official
    # 384 yaml, none other) squashes the whole image to (384, 384).
    for e in zoo.values():
        p = e.preprocessing
        squash = e.architecture.image_size == 384
        assert p.crop_pct == (1.0 if squash else 224 / 256), e.name
        assert p.crop_mode == ("squash" if squash else "center"), e.name
        assert p.interpolation == "bicubic"
        assert p.mean == (0.485, 0.456, 0.406) and p.std == (0.229, 0.224, 0.225)


def test_window12to_fine_tunes_keep_the_pretrain_windows(zoo):
    v2_ft = [e for e in zoo.values() if "window12to" in e.name]
    assert len(v2_ft) == 4
    for e in v2_ft:
        assert e.architecture.pretrained_window_sizes == (12, 12, 12, 6)
    for e in zoo.values():
        if e.family == "swin":
            assert not any(e.architecture.pretrained_window_sizes)


def test_reported_metrics_match_the_model_hub(zoo):
    assert zoo["swin-tiny-patch4-window7-224"].metrics.top1 == 81.2
    assert zoo["swinv2-large-patch4-window12to24-192to384-22kto1k-ft"].metrics.imagenet_v2_top1 == 78.31
    assert zoo["simmim-swinv2-giant-22k-500k"].metrics.simmim_val_loss == 0.4416
    assert zoo["simmim-swinv2-giant-22k-500k-ft"].metrics.top1 == 86.53
    assert zoo["swin-base-patch4-window7-224-22k"].metrics is None


def test_upstream_ids_use_timm_tags_and_flag_inferred_hub_ids(zoo):
    for e in zoo.values():
        if e.upstream.timm:
            arch, tag = e.upstream.timm.split(".")
            assert tag in ("ms_in1k", "ms_in22k", "ms_in22k_ft_in1k")
            assert arch in timm.list_models(arch), e.upstream.timm
    assert zoo["swin-base-patch4-window7-224-22kto1k"].upstream.transformers_inferred
    assert zoo["swin-base-patch4-window7-224"].upstream.transformers is None


def test_get_entry_suggests_close_names_for_a_typo():
    assert get_entry("swin-tiny-patch4-window7-224").architecture.window_size == 7
    with pytest.raises(UnknownEntryError, match="swin-tiny-patch4-window7-224") as info:
        get_entry("swin-tiny-patch4-window7-244")
    assert isinstance(info.value, LookupError)


# --------------------------------------------------------------------------------------------- broken entries
def _tiny_entry(raw_tables) -> dict:
    table = next(t for t in raw_tables["swin.toml"]["entry"] if t["name"] == "swin-tiny-patch4-window7-224")
    return copy.deepcopy(table)


def _set(path: str, value):
    def mutate(table: dict) -> None:
        *parents, key = path.split(".")
        for p in parents:
            table = table[p]
        table[key] = value

    return mutate


BROKEN = [
    ("window mismatching the name", _set("architecture.window_size", 8), "architecture.window_size"),
    ("image size mismatching the name", _set("architecture.image_size", 256), "architecture.image_size"),
    ("short sha256", _set("source.sha256", "abc123"), "source.sha256"),
    ("upper-case sha256", (lambda t: t["source"].update(sha256="A" * 64, pinned=True)), "source.sha256"),
    ("pinned without a digest", _set("source.pinned", True), "source.pinned"),
    ("a digest but not pinned", _set("source.sha256", "0" * 64), "source.pinned"),
    (
        "plain http url",
        _set("source.urls", ["http://example.com/swin_tiny_patch4_window7_224.pth"]),
        "source.urls",
    ),
    ("url naming another file", _set("source.urls", ["https://example.com/other.pth"]), "source.urls"),
    ("no url and no manual download", _set("source.urls", []), "source"),
    ("num_classes disagreeing with label_set", _set("num_classes", 21841), "num_classes"),
    (
        "v1 with pretrained windows",
        _set("architecture.pretrained_window_sizes", [7, 7, 7, 7]),
        "pretrained_window",
    ),
    (
        "heads and depths of different lengths",
        _set("architecture.num_heads", [3, 6, 12]),
        "architecture.num_heads",
    ),
    (
        "width not divisible by heads",
        _set("architecture.num_heads", [5, 6, 12, 24]),
        "architecture.num_heads",
    ),
    ("wrong layout", _set("layout", "official-swinv2"), "layout"),
    ("version against family", _set("architecture.version", 2), "architecture.version"),
    ("a misspelt key", _set("architecture.windowsize", 7), "windowsize"),
    ("a wrong type", _set("architecture.embed_dim", "96"), "architecture.embed_dim"),
    ("a missing required key", lambda t: t.pop("layout"), "layout"),
    ("input size against image size", _set("preprocessing.input_size", 256), "preprocessing.input_size"),
    ("invalid crop_pct", _set("preprocessing.crop_pct", 1.5), "crop_pct"),
    ("unknown crop_mode", _set("preprocessing.crop_mode", "border"), "crop_mode"),
    ("centre crop at crop_pct 1.0", _set("preprocessing.crop_pct", 1.0), "preprocessing.crop_mode"),
    (
        "squash with a crop",
        lambda t: t["preprocessing"].update(crop_mode="squash", crop_pct=0.875),
        "preprocessing.crop_pct",
    ),
    ("dangling pretrained_from", _set("pretrained_from", "no-such-entry"), "pretrained_from"),
    ("upper-case name", _set("name", "Swin-Tiny-patch4-window7-224"), "name"),
]


@pytest.mark.parametrize(("case", "mutate", "field"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_entry_is_rejected_naming_file_entry_and_field(raw_tables, case, mutate, field):
    table = _tiny_entry(raw_tables)
    validate_all(parse_entries({"entry": [copy.deepcopy(table)]}, "manifests/test.toml"))  # the original is fine
    mutate(table)
    with pytest.raises(ManifestError) as info:
        validate_all(parse_entries({"entry": [table]}, "manifests/test.toml"))
    message = str(info.value)
    assert "manifests/test.toml" in message
    assert repr(table.get("name", "swin-tiny-patch4-window7-224")) in message or "entry #1" in message
    assert field in message


def test_window12to_entry_with_other_pretrained_windows_is_rejected(raw_tables):
    name = "swinv2-base-patch4-window12to16-192to256-22kto1k-ft"
    table = copy.deepcopy(next(t for t in raw_tables["swinv2.toml"]["entry"] if t["name"] == name))
    table["architecture"]["pretrained_window_sizes"] = [12, 12, 12, 12]
    with pytest.raises(ManifestError, match=r"pretrained_window_sizes.*\[12, 12, 12, 6\]"):
        validate_all(parse_entries({"entry": [table]}, "manifests/swinv2.toml"))


def test_a_duplicate_name_across_files_is_rejected_naming_both_files(tmp_path, raw_tables):
    # Through the file loader: the same entry text in two manifest files.
    text = (resources.files("swinzoo.manifests") / "swin.toml").read_text()
    (tmp_path / "a.toml").write_text(text)
    assert len(load_manifests(tmp_path)) == 17
    first_entry = text.split("\n[[entry]]\n")[1]
    (tmp_path / "b.toml").write_text("[[entry]]\n" + first_entry)
    with pytest.raises(ManifestError, match=r"b\.toml: entry 'swin-tiny-patch4-window7-224': name: duplicate.*a\.toml"):
        load_manifests(tmp_path)


def test_invalid_toml_names_the_file(tmp_path):
    (tmp_path / "bad.toml").write_text("[[entry]\nname = 1\n")
    with pytest.raises(ManifestError, match=r"bad\.toml: not valid TOML"):
        load_manifests(tmp_path)


# --------------------------------------------------------------------------------------------- config
def test_config_carries_architecture_head_and_labels(zoo):
    cfg = zoo["swinv2-base-patch4-window12to24-192to384-22kto1k-ft"].config()
    assert (cfg.image_size, cfg.window_size, cfg.embed_dim) == (384, 24, 128)
    assert cfg.pretrained_window_sizes == [12, 12, 12, 6]
    assert cfg.num_labels == 1000 and cfg.id2label[0] == "tench, Tinca tinca"

    pre = zoo["simmim-swinv2-base-22k-500k"].config()
    assert pre.num_labels == 1 and pre.mim_norm_target and pre.mim_norm_target_patch_size == 47
    assert pre.encoder_stride == 32
    assert not zoo["simmim-swin-base-window6-192-100ep"].config().mim_norm_target

    custom = zoo["swin-tiny-patch4-window7-224"].config(num_labels=10, drop_path_rate=0.0)
    assert custom.num_labels == 10 and custom.drop_path_rate == 0.0


# --------------------------------------------------------------------------------------------- labels
def test_imagenet_label_names_have_the_head_sizes_and_known_classes():
    names_1k = label_names("imagenet-1k")
    assert len(names_1k) == 1000 and len(set(names_1k)) == 1000
    # Well-known ImageNet-1K classes at their indices (class 0 is the tench, 999 toilet tissue).
    assert names_1k[0] == "tench, Tinca tinca"
    assert names_1k[999].startswith("toilet tissue")
    # "crane" is both a bird (n02012849, index 134) and a machine (n03126707, index 517): kept apart.
    assert names_1k[134] == "crane (n02012849)" and names_1k[517] == "crane (n03126707)"

    names_22k = label_names("imagenet-22k")
    assert len(names_22k) == 21841 and len(set(names_22k)) == 21841
    assert label_names("none") == []


def test_22k_head_rows_named_by_the_official_22k_to_1k_map_are_those_1k_classes():
    """The shipped 22k->1k map (checked row for row against the official data/map22kto1k.txt) names, for each
    ImageNet-1k class, the 22k head row that holds it: the 22k labels must put that same class there."""
    from importlib import resources

    synsets_22k = mf.official_22k_synsets()
    rows = (resources.files("swinzoo.assets") / "imagenet22k_to_1k.txt").read_text().splitlines()
    mismatched = []
    for line in rows:
        row, wnid, _ = line.split("\t")
        if wnid != "n04399382" and synsets_22k[int(row)] != wnid:  # teddy bear: in no 22k list (row 5564 stands in)
            mismatched.append((row, wnid, synsets_22k[int(row)]))
    assert mismatched == []
    assert label_names("imagenet-22k")[9205] != label_names("imagenet-22k")[9204]


def test_label_names_fall_back_to_generic_names_without_timm(monkeypatch):
    mf._label_names.cache_clear()
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed: find_spec("timm") is None
    try:
        names = label_names("imagenet-1k")
        assert names[:2] == ["LABEL_0", "LABEL_1"] and len(names) == 1000
    finally:
        mf._label_names.cache_clear()


def test_label_names_read_timms_files_without_importing_timm():
    """convert builds configs with label names; importing timm for them would cost ~200 MB of RSS (issue 9)."""
    import subprocess

    code = (
        "import sys; from swinzoo.manifest import label_names; "
        "names = label_names('imagenet-1k') + label_names('imagenet-22k'); "
        "print(len(names), 'timm' in sys.modules, 'torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(1000 + 21841), "False", "False"]


# --------------------------------------------------------------------------------------------- parameters
TIMM_PRESETS = [
    "swin-tiny-patch4-window7-224",
    "swin-base-patch4-window12-384",  # last stage window clamps to 12
    "swin-tiny-patch4-window7-224-22k",  # 21841-class head
    "swin-large-patch4-window12-384-22k",
    "swinv2-tiny-patch4-window16-256",  # stage 4 smaller than the window
    "swinv2-base-patch4-window12to24-192to384-22kto1k-ft",
    "swinv2-large-patch4-window12-192-22k",
]


@pytest.mark.parametrize("name", TIMM_PRESETS)
def test_parameter_count_matches_timm_for_the_same_preset(zoo, name):
    e = zoo[name]
    assert e.num_params == _timm_params(e.upstream.timm.split(".")[0], num_classes=e.num_classes)


def test_parameter_count_matches_timm_for_architectures_timm_has_no_preset_for(zoo):
    c24 = zoo["swin-tiny-c24-patch4-window8-256"]
    expected = _timm_params(
        "swin_tiny_patch4_window7_224",
        img_size=256,
        window_size=8,
        num_heads=(4, 8, 16, 32),
        num_classes=1000,
    )
    assert c24.num_params == expected
    ft = zoo["simmim-swin-large-window14-224-800ep-ft"]  # window 14: stage 4 clamps to 7
    assert ft.num_params == _timm_params("swin_large_patch4_window7_224", window_size=14, num_classes=1000)
    ft2 = zoo["simmim-swinv2-small-1k-500k-ft"]
    assert ft2.num_params == _timm_params("swinv2_small_window8_256", img_size=224, window_size=14, num_classes=1000)


@pytest.mark.parametrize(
    ("version", "embed_dim", "depths", "heads", "window", "image", "classes"),
    [
        (1, 32, (1, 1, 3, 1), (1, 2, 4, 8), 7, 224, 5),
        (1, 48, (2, 2), (2, 4), 5, 160, 0),
        (2, 32, (1, 1, 3, 1), (1, 2, 4, 8), 8, 256, 5),
        (2, 40, (2, 1, 2), (2, 4, 5), 6, 96, 3),
    ],
)
def test_count_parameters_formula_matches_timm_on_small_configs(
    version, embed_dim, depths, heads, window, image, classes
):
    kwargs = dict(embed_dim=embed_dim, depths=depths, num_heads=heads, window_size=window, img_size=image)
    name = "swin_tiny_patch4_window7_224" if version == 1 else "swinv2_tiny_window8_256"
    expected = _timm_params(name, num_classes=classes, **kwargs)
    got = count_parameters(
        version=version,
        image_size=image,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=heads,
        window_size=window,
        num_classes=classes,
    )
    assert got == expected


def test_simmim_pretrain_counts_match_transformers_masked_image_models(zoo):
    from transformers import SwinConfig as HFSwinConfig
    from transformers import SwinForMaskedImageModeling, Swinv2Config, Swinv2ForMaskedImageModeling

    for name, cfg_cls, model_cls in [
        ("simmim-swin-base-window6-192-100ep", HFSwinConfig, SwinForMaskedImageModeling),
        ("simmim-swin-large-window12-192-800ep", HFSwinConfig, SwinForMaskedImageModeling),
        ("simmim-swinv2-small-1k-500k", Swinv2Config, Swinv2ForMaskedImageModeling),
    ]:
        e = zoo[name]
        a = e.architecture
        hf = cfg_cls(
            image_size=a.image_size,
            embed_dim=a.embed_dim,
            depths=list(a.depths),
            num_heads=list(a.num_heads),
            window_size=a.window_size,
            encoder_stride=e.simmim.encoder_stride,
        )
        with torch.device("meta"):
            hf_count = _n_params(model_cls(hf))
        if name == "simmim-swin-large-window12-192-800ep":
            # transformers' Swin v1 keeps a (2*12 - 1)^2 bias table in stage 4 (6x6 tokens); the official code
            # clamps that stage's window to 6, so its table is (2*6 - 1)^2: 48 heads, 2 blocks.
            hf_count -= 2 * 48 * ((2 * 12 - 1) ** 2 - (2 * 6 - 1) ** 2)
        assert e.num_params == hf_count, name


def test_simmim_swinv2_backbone_sizes_match_the_reported_sizes(zoo):
    # Backbone sizes in the data-scaling table (MODELHUB): 49M, 87M, 195M, 655M, 1.06B (giant: depths [2, 2, 18, 2]
    # from microsoft/Swin-Transformer#319, the released weights; not the paper's 3.0B SwinV2-G).
    reported = {"small": 49e6, "base": 87e6, "large": 195e6, "huge": 655e6, "giant": 1.06e9}
    for size, n in reported.items():
        a = zoo[f"simmim-swinv2-{size}-1k-500k"].architecture
        backbone = count_parameters(
            version=2,
            image_size=a.image_size,
            embed_dim=a.embed_dim,
            depths=a.depths,
            num_heads=a.num_heads,
            window_size=a.window_size,
        )
        assert abs(backbone - n) < max(0.5e6, 0.005 * n), (size, backbone)
    giant = zoo["simmim-swinv2-giant-1k-500k"]
    assert giant.architecture.depths == (2, 2, 18, 2)
    assert {"embed_dim", "depths"} <= set(giant.architecture.derive_from_checkpoint)


def test_entries_are_frozen(zoo):
    with pytest.raises(dataclasses.FrozenInstanceError):
        zoo["swin-tiny-patch4-window7-224"].name = "x"
