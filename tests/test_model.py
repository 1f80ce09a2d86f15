import json
import os

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from vsa_vision import DecomposerHead, Pipeline
from vsa_vision.checkpoint import CheckpointError, export_model, load_model
from vsa_vision.model import VSAModel, check_codebook_record, codebook_record, schema_codebooks
from vsa_vision.scenes import SceneDataModule, default_schema, render_scene, sample_scenes
from vsa_vision.training import cli_main

TINY = dict(dim=256, width=8, features=32, iterations=20, test_methods=["diffusion", "brute_force"])


def tiny_model(**kw):
    return VSAModel(**{**TINY, **kw})


def tiny_data(**kw):
    args = dict(train_size=64, val_size=16, test_size=16, heldout_size=16, batch_size=16)
    args.update(kw)
    return SceneDataModule(**args)


def quiet_trainer(tmp_path, **kw):
    args = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, default_root_dir=str(tmp_path))
    args.update(kw)
    return pl.Trainer(**args)


def test_decomposer_head_recovers_exact_bound_vectors():
    cb = schema_codebooks(default_schema(), dim=512, seed=1)
    head = DecomposerHead(cb, method="brute_force")
    idx = torch.tensor([[1, 2, 3, 4, 5, 1], [0, 9, 0, 11, 0, 0]])
    res = head(cb.bind_indices(idx))
    assert torch.equal(res.indices, idx)
    assert res.labels[0]["shape"] == "square"
    with pytest.raises(ValueError, match="unknown decomposer"):
        DecomposerHead(cb, method="no_such")


def test_train_py_fast_dev_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cli_main(["fit", "--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu",
              "--trainer.enable_progress_bar", "false",
              "--model.dim", "256", "--model.width", "8", "--model.features", "32", "--model.iterations", "10",
              "--model.test_methods", "[diffusion, brute_force]",
              "--data.train_size", "32", "--data.val_size", "8", "--data.test_size", "8",
              "--data.heldout_size", "8", "--data.batch_size", "8", "--data.val_heldout_size", "8"])
    out = capsys.readouterr().out
    assert "| test | diffusion |" in out and "| heldout | brute_force |" in out
    report = json.loads((tmp_path / "test_report.json").read_text())
    assert set(report["splits"]) == {"test", "heldout"}
    assert set(report["splits"]["test"]) == {"diffusion", "brute_force"}


def test_loss_falls_on_a_tiny_overfit_run(tmp_path):
    pl.seed_everything(0)
    model = tiny_model(lr=3e-3, schedule="constant", channels_last=False)
    losses = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    quiet_trainer(tmp_path, max_steps=40, overfit_batches=1, num_sanity_val_steps=0, limit_val_batches=0,
                  callbacks=[Record()]).fit(model, tiny_data())
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


@pytest.mark.parametrize("loss", ["contrastive", "cosine+contrastive"])
def test_contrastive_losses_have_gradients(loss):
    model = tiny_model(loss=loss)
    labels = torch.tensor([[1, 2, 3, 4, 5, 1]])
    q = torch.randn(1, 256, requires_grad=True)
    value, _ = model.loss(q, labels)
    value.backward()
    assert torch.isfinite(value) and q.grad.abs().sum() > 0
    # the gradient points downhill: a small step against it lowers the loss
    with torch.no_grad():
        assert model.loss(q - 1e-2 * q.grad / q.grad.norm(), labels)[0] < value
    # the exact target scores better than a random vector
    assert model.loss(model.targets(labels), labels)[0] < value


def test_checkpoints_round_trip_codebooks_and_predictions(tmp_path):
    model = tiny_model(codebook_seed=3).eval()
    images = torch.stack([torch.from_numpy(__import__("numpy").array(render_scene(default_schema(), s)))
                          .permute(2, 0, 1) for s in sample_scenes(default_schema(), 4, seed=2)])
    ref = model(images)
    path = export_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.codebooks == model.codebooks
    assert torch.equal(loaded(images), ref)
    # a Lightning checkpoint, loaded with weights_only
    trainer = quiet_trainer(tmp_path, max_steps=1, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, tiny_data())
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = load_model(tmp_path / "m.ckpt")
    assert loaded.codebooks == model.codebooks
    assert torch.allclose(loaded(images), model.eval()(images))
    pipe = Pipeline.from_checkpoint(tmp_path / "m.ckpt", method="brute_force")
    a = pipe.recognize(images)
    b = Pipeline(model.eval(), method="brute_force").recognize(images)
    assert [r.labels for r in a] == [r.labels for r in b]


def test_mismatched_codebooks_or_schema_are_refused(tmp_path):
    model = tiny_model(codebook_seed=0)
    other = tiny_model(codebook_seed=1)
    with pytest.raises(ValueError, match="codebook for 'shape' differs"):
        other.on_load_checkpoint({"state_dict": model.state_dict()})
    small = {"name": "small", "attributes": [{"name": "shape", "values": ["circle", "square"]}]}
    trainer = quiet_trainer(tmp_path, max_steps=1)
    with pytest.raises(ValueError, match="does not match the model's"):
        trainer.fit(tiny_model(), tiny_data(schema=small))


def test_corrupt_or_truncated_checkpoints_are_refused(tmp_path):
    model = tiny_model()
    good = export_model(model, tmp_path / "m.safetensors")
    data = open(good, "rb").read()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(tmp_path / "cut.safetensors")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot be read as a Lightning checkpoint"):
        load_model(tmp_path / "junk.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="no state_dict / hyper_parameters"):
        load_model(tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "missing.ckpt")


def test_pipeline_input_policy(tmp_path):
    from PIL import Image

    pipe = Pipeline(tiny_model(), method="brute_force")
    scene = sample_scenes(default_schema(), 1, seed=0)[0]
    img = render_scene(default_schema(), scene)
    x = pipe.preprocess([img, img.convert("RGBA"), img.convert("P"), img.resize((128, 128), Image.Resampling.NEAREST),
                         Image.new("L", (80, 40))])
    assert x.shape == (5, 3, 64, 64) and x.dtype == torch.uint8
    assert torch.equal(x[0], x[1]) and torch.equal(x[0], x[3])
    recs = pipe.recognize(x)
    assert len(recs) == 5 and set(recs[0].labels) == set(default_schema().names)
    assert all(0.0 <= c <= 1.0 for c in recs[0].confidence.values())
    with pytest.raises(TypeError, match="PIL images or a tensor"):
        pipe.preprocess("image.png")
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        pipe.preprocess(torch.zeros(2, 1, 64, 64))


@pytest.mark.slow
def test_ddp_two_cpu_processes_share_codebooks(tmp_path):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    out = tmp_path / "ranks"
    out.mkdir()
    model = tiny_model()
    model.rank_dir = str(out)
    trainer = quiet_trainer(tmp_path, strategy="ddp_spawn", devices=2, max_steps=2, num_sanity_val_steps=0,
                            limit_val_batches=0, callbacks=[_SaveCodebooks(str(out))])
    trainer.fit(model, tiny_data())
    files = sorted(os.listdir(out))
    assert files == ["rank0.pt", "rank1.pt"]
    a, b = (torch.load(out / f, weights_only=True) for f in files)
    assert a["steps"] == b["steps"] == 2
    assert all(torch.equal(a["codebooks"][k], b["codebooks"][k]) for k in a["codebooks"])


class _SaveCodebooks(pl.Callback):
    def __init__(self, out):
        self.out = out

    def on_train_end(self, trainer, module):
        cbs = {n: t.clone() for n, t in zip(module.codebooks.names, module.codebooks.tensors)}
        torch.save({"codebooks": cbs, "steps": trainer.global_step},
                   os.path.join(self.out, f"rank{trainer.global_rank}.pt"))


CONFIGS = sorted(f"configs/{f}" for f in os.listdir(os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "configs")) if f.endswith(".yaml"))


@pytest.mark.parametrize("config", CONFIGS)
def test_shipped_configs_parse(config, capsys):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with pytest.raises(SystemExit) as e:
        cli_main(["fit", "--config", os.path.join(root, config), "--print_config"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "\nmodel:\n" in out and "\ndata:\n" in out and "class_path: vsa_vision.training.WallClock" in out
    # each config's own encoder: the CPU config a small CNN, the GPU config a ResNet-18, clutter dense heads
    expect = {"configs/default.yaml": "backbone: small_cnn", "configs/gpu.yaml": "backbone: resnet18",
              "configs/clutter.yaml": "slots: dense", "configs/clutter-gpu.yaml": "slots: dense"}.get(config)
    assert expect is None or expect in out


def test_training_curve_reads_validation_rows_and_plots(tmp_path):
    from vsa_vision.bench.training import plot_curves, read_curve

    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,time/minutes,train/loss,val/acc_all,val/cos,val_heldout/acc_all\n"
                    "0,10,,0.9,,,\n0,20,1.5,,0.25,0.4,0.1\n1,40,3.0,,0.99,0.9,0.5\n")
    pts = read_curve(str(path))
    assert [(p["minutes"], p["acc_all"], p["heldout"]) for p in pts] == [(1.5, 0.25, 0.1), (3.0, 0.99, 0.5)]
    plot_curves([("run", str(path))], str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "empty.csv").write_text("epoch,step,train/loss\n0,1,0.5\n")
    with pytest.raises(ValueError, match="no validation rows"):
        read_curve(str(tmp_path / "empty.csv"))


class InterruptAtSecondEpoch(pl.Callback):
    """Simulates Ctrl-C at the start of epoch 1, after epoch 0's checkpoint was written."""

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_an_interrupted_run_resumes_from_last(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
              "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--test_after_fit", "false",
              "--trainer.max_epochs", "2",
              "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.dirpath", "ck",
              "--trainer.callbacks.filename", "last", "--trainer.callbacks.enable_version_counter", "false",
              "--model.dim", "256", "--model.width", "8", "--model.features", "32", "--model.iterations", "5",
              "--data.train_size", "32", "--data.val_size", "8", "--data.test_size", "8",
              "--data.heldout_size", "8", "--data.batch_size", "8"]
    with pytest.raises(SystemExit):  # Lightning's graceful shutdown on Ctrl-C exits
        cli_main(["fit", *common, "--trainer.callbacks+=tests.test_model.InterruptAtSecondEpoch"])
    saved = torch.load(tmp_path / "ck" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 2
    resumed = cli_main(["fit", "--ckpt_path", "last", *common])
    assert resumed.trainer.global_step == 4  # went on from step 2, not from scratch
    assert resumed.trainer.current_epoch == 2


def test_predict_step_returns_labels_and_confidences(tmp_path):
    model = tiny_model(method="brute_force")
    dm = tiny_data(test_size=5)
    out = quiet_trainer(tmp_path).predict(model, datamodule=dm)
    rows = [r for batch in out for r in batch]
    assert len(rows) == 5
    assert set(rows[0]["labels"]) == set(default_schema().names) == set(rows[0]["confidence"])


def test_validation_logs_the_heldout_loader_separately(tmp_path):
    model = tiny_model(channels_last=False)
    trainer = quiet_trainer(tmp_path)
    out = trainer.validate(model, tiny_data(val_heldout_size=16), verbose=False)
    assert len(out) == 2
    assert {"val/acc_all", "val/cos", "val/decode_ms_per_image"} <= set(out[0])
    assert set(out[1]) == {"val_heldout/acc_all", "val_heldout/cos"}


def test_silhouette_is_fill_invariant_and_travels_with_the_checkpoint(tmp_path):
    import numpy as np

    from vsa_vision.encoder import object_masks, silhouette
    from vsa_vision.model import to_float_images

    schema = default_schema()
    scenes = [dict(shape=sh, colour="green", size=sz, x="5", y="6", fill=f)
              for sh in schema.attribute("shape").values for sz in ("small", "huge") for f in ("solid", "outline")]
    images = to_float_images(torch.stack([torch.from_numpy(np.array(render_scene(schema, s))).permute(2, 0, 1)
                                          for s in scenes]))
    sil = silhouette(images)
    assert sil.shape == (len(scenes), 1, 64, 64) and set(sil.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(sil[0::2], sil[1::2])  # filled and outlined: the same silhouette
    assert not torch.equal(images[0::2], images[1::2])
    assert sil[2 * 2].sum() < sil[2 * 2 + 2].sum()  # small < huge: it is the object, not the frame
    ring = torch.zeros(1, 3, 16, 16)
    ring[..., 4:12, 4:12] = 1.0
    ring[..., 5:11, 5:11] = 0.0  # a hollow square: its inside is filled, its outside is not
    assert silhouette(ring)[0, 0, 4:12, 4:12].eq(1).all() and silhouette(ring).sum() == 64
    _, holes = object_masks(images)
    assert holes[0::2].sum() == 0 and (holes[1::2].sum((1, 2, 3)) > 0).all()  # only outlines have holes
    assert object_masks(ring)[1].sum() == 36
    model = tiny_model(silhouette=True).eval()
    assert model.encoder.backbone.conv[0].in_channels == 5
    loaded = load_model(export_model(model, tmp_path / "s.safetensors"))
    assert loaded.encoder.silhouette and torch.equal(loaded(images[:4]), model(images[:4]))


def _reorder(schema_dict, how):
    """A schema dict with two same-sized attributes swapped, or one attribute's values reversed:
    codebooks of the same sizes and seed, labels that no longer match the trained weights."""
    d = json.loads(json.dumps(schema_dict))
    attrs = d["attributes"]
    if how == "swap x and y":
        i, j = [k for k, a in enumerate(attrs) if a["name"] in ("x", "y")]
        attrs[i], attrs[j] = attrs[j], attrs[i]
    else:
        colour = next(a for a in attrs if a["name"] == "colour")
        colour["values"].reverse()
        colour["params"].reverse()
    return d


@pytest.mark.parametrize("how", ["swap x and y", "reverse colour"])
def test_a_checkpoint_whose_labels_were_reordered_is_refused(tmp_path, how):
    from safetensors import safe_open
    from safetensors.torch import save_file

    model = tiny_model()
    good = export_model(model, tmp_path / "m.safetensors")
    assert load_model(good).codebooks == model.codebooks
    with safe_open(good, framework="pt") as f:
        meta, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    hparams = json.loads(meta["hparams"])
    hparams["schema"] = _reorder(hparams["schema"], how)
    save_file(state, tmp_path / "bad.safetensors", metadata={**meta, "hparams": json.dumps(hparams)})
    with pytest.raises(CheckpointError, match="labels .* differ from those its weights were trained with"):
        load_model(tmp_path / "bad.safetensors")
    # a Lightning checkpoint the same: through load_model and through Lightning's own loader
    trainer = quiet_trainer(tmp_path, max_steps=1, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, tiny_data())
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    ckpt = torch.load(tmp_path / "m.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["schema"] = _reorder(ckpt["hyper_parameters"]["schema"], how)
    torch.save(ckpt, tmp_path / "bad.ckpt")
    assert load_model(tmp_path / "m.ckpt").codebooks == model.codebooks
    with pytest.raises(CheckpointError, match="labels .* differ"):
        load_model(tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match="labels .* differ"):
        VSAModel.load_from_checkpoint(tmp_path / "bad.ckpt", weights_only=True)
    # the record also holds the codewords: the same names and labels drawn from another seed differ
    other = codebook_record(schema_codebooks(default_schema(), dim=256, seed=1))
    with pytest.raises(ValueError, match="contents differ"):
        check_codebook_record(other, model.codebooks)


def test_validation_decodes_by_exhaustive_search_until_the_encoder_is_good(tmp_path):
    """The sanity check and the validations of a poor encoder never run the head's full budget."""
    model = tiny_model(channels_last=False)  # head: diffusion; val_head_cos 0.9
    used = []
    evaluate = model._evaluate

    def spy(q, labels, method):
        used.append((model.trainer.sanity_checking, method or model.hparams.method))
        return evaluate(q, labels, method)

    model._evaluate = spy
    trainer = quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1, num_sanity_val_steps=1)
    trainer.fit(model, tiny_data())
    assert used == [(True, "brute_force"), (False, "brute_force")]  # sanity check, then a poor encoder
    assert model.last_val_cos is not None and model.last_val_cos < 0.9
    out = trainer.validate(model, tiny_data(), verbose=False)[0]
    assert out["val/decoded_by_head"] == 0.0 and abs(out["val/cos"] - model.last_val_cos) < 1e-6
    model.last_val_cos = 0.95  # as if the previous validation had found a good encoder
    used.clear()
    out = trainer.validate(model, tiny_data(), verbose=False)[0]
    assert out["val/decoded_by_head"] == 1.0 and used == [(False, "diffusion")]
    always = tiny_model(channels_last=False, val_head_cos=None)  # the head at every validation
    assert trainer.validate(always, tiny_data(), verbose=False)[0]["val/decoded_by_head"] == 1.0
    with pytest.raises(ValueError, match="val_head_cos"):
        tiny_model(val_head_cos=2.0)


def test_training_data_caches_each_scene_when_first_drawn():
    """train.py's data: nothing is rendered before the first step, and the items, their order and
    the batches are those of rendering every split in full first."""
    from vsa_vision.training import FillingCache, TrainingData

    args = dict(train_size=64, val_size=16, test_size=16, heldout_size=16, batch_size=16, val_heldout_size=16)
    lazy, full = TrainingData(cache=True, **args), SceneDataModule(cache=True, **args)
    lazy.setup("fit")
    full.setup("fit")
    assert lazy.cache and set(lazy.datasets) == {"train", "val", "val_heldout"}
    assert all(isinstance(ds, FillingCache) and not ds.filled.any() for ds in lazy.datasets.values())
    for a, b in zip(lazy.train_dataloader(), full.train_dataloader()):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert lazy.datasets["train"].filled.all()
    assert all(torch.equal(x, y) for x, y in zip(lazy.datasets["val"][-1], full.datasets["val"][-1]))
    with pytest.raises(IndexError):
        lazy.datasets["train"][64]
    with_workers = TrainingData(train_size=32, val_size=8, test_size=8, heldout_size=8, num_workers=1)
    with_workers.setup("fit")  # each worker would fill its own copy: rendered up front as before
    assert not isinstance(with_workers.datasets["train"], FillingCache)


def test_an_attribute_read_by_a_reader_of_its_own(tmp_path):
    import numpy as np

    from vsa_vision.encoder import AttributeReader

    model = tiny_model(readers=["shape", "size"]).eval()
    names = model.factor_names
    k_shape, k_size = names.index("shape"), names.index("size")
    assert sorted(int(k) for k in model.encoder.readers) == sorted([k_shape, k_size])
    reader = model.encoder.readers[str(k_shape)]
    assert isinstance(reader, AttributeReader) and torch.equal(reader.codebook, model._codebook(k_shape))
    images = torch.stack([torch.from_numpy(np.array(render_scene(default_schema(), s))).permute(2, 0, 1)
                          for s in sample_scenes(default_schema(), 4, seed=5)])
    q, factors = model.encode(images)
    x = model.encoder._input(images.float() / 255)
    # the reader's factor is the softmax mixture of the attribute's codewords, and it is bound into q
    mixture = reader.logits(x).softmax(-1) @ model._codebook(k_shape)
    assert torch.allclose(factors[:, k_shape], mixture, atol=1e-6)
    assert torch.allclose(q, factors.prod(1), atol=1e-6)
    # the other factors are the head's, as without readers
    head = model.encoder.head.factors(model.encoder.backbone(x))
    colour = names.index("colour")
    assert torch.allclose(factors[:, colour], head[:, colour], atol=1e-6)
    # a trained reader's sure reading decodes to its value: make the reader certain of value 2
    with torch.no_grad():
        reader.net[-1].weight.zero_()
        reader.net[-1].bias.copy_(torch.arange(reader.codebook.shape[0]).eq(2).float() * 50)
    assert torch.allclose(model.encode(images)[1][:, k_shape], model._codebook(k_shape)[2].expand(4, -1), atol=1e-5)
    # the readers travel with the checkpoint
    loaded = load_model(export_model(model, tmp_path / "r.safetensors"))
    assert loaded.hparams.readers == ["shape", "size"]
    assert torch.equal(loaded(images), model(images))


def test_readers_are_refused_where_they_cannot_work():
    with pytest.raises(ValueError, match="readers: 'hue' is not an attribute of the schema"):
        tiny_model(readers=["hue"])
    with pytest.raises(ValueError, match="readers: .*head='linear' has no factors"):
        tiny_model(readers=["shape"], head="linear", loss="cosine")


def test_a_model_with_readers_trains(tmp_path):
    pl.seed_everything(0)
    model = tiny_model(lr=3e-3, schedule="constant", channels_last=False, readers=["shape"])
    before = [p.detach().clone() for p in model.encoder.readers.parameters()]
    quiet_trainer(tmp_path, max_steps=5, num_sanity_val_steps=0, limit_val_batches=0).fit(model, tiny_data())
    after = list(model.encoder.readers.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))  # the loss reaches the reader


def test_readers_auto_reads_every_attribute_but_the_positions(tmp_path):
    from vsa_vision.encoder import reader_names

    model = tiny_model(readers="auto").eval()
    assert sorted(model.factor_names[int(k)] for k in model.encoder.readers) == ["colour", "fill", "shape", "size"]
    loaded = load_model(export_model(model, tmp_path / "a.safetensors"))
    assert loaded.hparams.readers == "auto" and len(loaded.encoder.readers) == 4
    # a user's columns: positions by role or by name stay with the head, every other attribute gets a reader
    names = ["material", "pos_x", "row", "col", "xpos", "object_y", "angle", "posture", "index", "hue", "left"]
    assert reader_names(names, "auto") == ["material", "angle", "posture", "index", "hue"]
    assert reader_names(["where", "shape"], "auto", positions=["where"]) == ["shape"]
    assert reader_names(names, ["hue"]) == ["hue"] and reader_names(names, None) == []
    with pytest.raises(ValueError, match="readers: expected 'auto' or a list"):
        tiny_model(readers="all")


def test_colour_blind_readers_see_brightness_only(tmp_path):
    import numpy as np

    model = tiny_model(readers="auto", colour_blind="auto").eval()
    names = model.factor_names
    blind = {names[int(k)]: r.colour_blind for k, r in model.encoder.readers.items()}
    assert blind == {"shape": True, "colour": False, "size": True, "fill": True}  # the colour keeps its colours
    images = torch.stack([torch.from_numpy(np.array(render_scene(default_schema(), s))).permute(2, 0, 1)
                          for s in sample_scenes(default_schema(), 4, seed=7)])
    x = model.encoder._input(images.float() / 255)
    swapped = x[:, [2, 0, 1]]  # the same picture in other colours
    for name, r in ((n, model.encoder.readers[str(names.index(n))]) for n in ("shape", "colour")):
        same = torch.allclose(r.logits(x), r.logits(swapped), atol=1e-6)
        assert same == (name == "shape"), name
    loaded = load_model(export_model(model, tmp_path / "b.safetensors"))
    assert torch.equal(loaded(images), model(images))
    with pytest.raises(ValueError, match="colour_blind: 'x' is not read by a reader of its own"):
        tiny_model(readers=["shape"], colour_blind=["x"])


def test_turned_pictures_turn_each_picture_about_its_content():
    from vsa_vision.encoder import content_centres, turned_pictures

    x = torch.zeros(2, 1, 9, 9)
    x[:, 0, 4, 5:8] = 1.0  # a bar right of the centre, its own centre at column 6
    assert torch.allclose(content_centres(x), torch.tensor([[(2 * 6 + 1) / 9 - 1, 0.0]] * 2), atol=1e-6)
    turned = turned_pictures(x, torch.tensor([90.0, 0.0]))
    upright = torch.zeros(9, 9)
    upright[3:6, 6] = 1.0  # turned about its own centre
    assert torch.allclose(turned[0, 0], upright, atol=1e-5) and torch.allclose(turned[1], x[1], atol=1e-5)
    torch.manual_seed(0)
    drawn = turned_pictures(x[:1].expand(8, -1, -1, -1), 20.0)  # random angles within +-20 degrees
    assert drawn.shape == (8, 1, 9, 9) and not torch.allclose(drawn[0], drawn[1])
    assert torch.allclose(drawn.sum((1, 2, 3)), torch.full((8,), 3.0), atol=0.2)  # the bar kept whole
    assert drawn[:, 0, 2, 6].abs().max() < 1e-5 and drawn[:, 0, 6, 6].abs().max() < 1e-5  # never turned far
    # an object in a corner stays in the picture, on a canvas that is not square too
    corner = torch.zeros(1, 3, 20, 30)
    corner[0, :, 1:5, 1:5] = 1.0
    for angle in (45.0, -45.0, 90.0):
        out = turned_pictures(corner, torch.tensor([angle]))
        assert abs(out.sum().item() - corner.sum().item()) < 0.05 * corner.sum().item(), angle
        assert out[0, 0, 10:, 10:].abs().max() < 1e-5  # no part of it moved across the picture
    assert torch.equal(content_centres(torch.ones(2, 3, 5, 5)), torch.zeros(2, 2))  # one colour: the centre


def test_reader_turn_turns_the_pictures_of_all_readers_but_a_turn_in_training_only(tmp_path):
    from types import SimpleNamespace

    from vsa_vision.encoder import reader_arguments

    turning = default_schema().to_dict()
    turning["name"] = "turning"
    turning["attributes"].append({"name": "angle", "values": ["a0", "a15", "a30"]})
    model = tiny_model(schema=turning, readers=["shape", "colour", "angle"], reader_turn=30.0, channels_last=False)
    names = model.factor_names
    seen = {}
    for k, r in model.encoder.readers.items():
        r.register_forward_hook(lambda m, args, out, k=k: seen.__setitem__(names[int(k)], args[0].clone()))
    images = torch.stack([torch.from_numpy(np.array(render_scene(default_schema(), s))).permute(2, 0, 1)
                          for s in sample_scenes(default_schema(), 8, seed=3)])
    x = model.encoder._input(images.float() / 255)
    torch.manual_seed(0)
    model.train()(images)
    same = [torch.allclose(a, b, atol=1e-4) for a, b in zip(seen["shape"], x)]
    assert seen["shape"].shape == x.shape and 0 < sum(same) < len(same)  # some turned, some as drawn
    assert torch.equal(seen["angle"], x)  # the turn's own reader: every picture as drawn
    model.eval()(images)
    assert torch.equal(seen["shape"], x) and torch.equal(seen["colour"], x)  # no turn outside training
    loaded = load_model(export_model(model, tmp_path / "t.safetensors"))
    assert loaded.hparams.reader_turn == 30.0 and torch.equal(loaded(images), model(images))
    # a turn's own reader sees the pictures as drawn: by name, or by the role rotation
    attrs = [("shape", None), ("angle", None), ("hue", None), ("x", "x"), ("spin", "rotation"), ("tilt_deg", None)]
    schema = SimpleNamespace(attributes=[SimpleNamespace(name=n, role=r) for n, r in attrs])
    cb = SimpleNamespace(names=tuple(n for n, _ in attrs), tensors=tuple(torch.ones(2, 8) for _ in attrs))
    args = reader_arguments(schema, cb, "auto", None, 0, 15.0)
    assert [cb.names[k] for k in args["turned"]] == ["shape", "hue"] and args["reader_turn"] == 15.0
    # no attribute a turn: no reader is shown one (a label may hang on how an object stands)
    assert tiny_model(readers=["shape"], reader_turn=30.0).encoder.turned == ()
    plain = SimpleNamespace(attributes=[SimpleNamespace(name=n, role=r) for n, r in attrs if n in ("shape", "hue")])
    two = SimpleNamespace(names=("shape", "hue"), tensors=(torch.ones(2, 8),) * 2)
    assert reader_arguments(plain, two, "auto", None, 0, 15.0)["turned"] == []
    with pytest.raises(ValueError, match="reader_turn: expected degrees in"):
        tiny_model(readers=["shape"], reader_turn=-5.0)


def test_reader_pad_repeats_the_edge_and_travels_with_the_checkpoint(tmp_path):
    import torch.nn.functional as F

    model = tiny_model(readers=["shape"], reader_pad=8).eval()
    reader = model.encoder.readers[str(model.factor_names.index("shape"))]
    x = torch.rand(2, 3, 64, 64)
    assert torch.allclose(reader.logits(x), reader.net(F.pad(x, (8, 8, 8, 8), mode="replicate")))
    loaded = load_model(export_model(model, tmp_path / "p.safetensors"))
    assert loaded.encoder.readers[str(model.factor_names.index("shape"))].pad == 8
    with pytest.raises(ValueError, match="reader_pad"):
        tiny_model(readers=["shape"], reader_pad=-1)
