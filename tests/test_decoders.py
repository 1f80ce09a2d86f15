"""The learned image decoders: shapes, the placed decoder learning where and in which colour to draw,
and the kind travelling with a checkpoint."""

import math

import pytest
import torch

from vsa_vision.decoders import ImageDecoder, PlacedDecoder, make_decoder

XS = (3, 10, 17, 24)  # the left edge of a 5-pixel square, by the label of attribute "x"
COLOURS = ((1.0, 0.2, 0.2), (0.2, 1.0, 0.2))


def _images(labels: torch.Tensor) -> torch.Tensor:
    """32 x 32 images on a dark background: a 5 x 5 square in colour ``labels[:, 0]`` at ``XS[labels[:, 1]]``."""
    out = torch.full((len(labels), 3, 32, 32), 0.05)
    for i, (c, x) in enumerate(labels.tolist()):
        out[i, :, 13:18, XS[x]:XS[x] + 5] = torch.tensor(COLOURS[c])[:, None, None]
    return out


@pytest.mark.parametrize("kind", ["grid", "placed"])
def test_a_decoder_draws_images_of_the_schemas_size(kind):
    dec = make_decoder(kind, (2, 4), 32, 16)
    labels = torch.tensor([[0, 1], [1, 3]])
    x = dec(labels)
    assert x.shape == (2, 3, 32, 32) and bool(((x >= 0) & (x <= 1)).all())
    assert dec.draw(labels).dtype == torch.uint8
    with pytest.raises(ValueError, match="value indices"):
        dec(torch.tensor([0, 1]))


def test_an_unknown_kind_is_refused_naming_the_kinds():
    with pytest.raises(ValueError, match="decoder_kind.*grid.*placed"):
        make_decoder("spatial", (2, 4), 32, 16)


def test_the_placed_decoder_scales_and_moves_its_frame_onto_the_canvas():
    dec = PlacedDecoder((2, 4), image_size=32, width=16, patch=16)
    with torch.no_grad():
        last = dec.up[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([10.0, -10.0, -10.0, 10.0]))  # a frame of opaque red
        dec.place.bias.copy_(torch.tensor([math.log(0.25), 0.5, -0.5]))  # a quarter of the canvas, right, up
    img = dec(torch.tensor([[0, 0]]))[0]
    red = img[0] > 0.5
    rows, cols = red.any(1).nonzero().flatten(), red.any(0).nonzero().flatten()
    # normalised (0.5, -0.5) is pixel (24, 8); a quarter of 32 pixels is 8 across
    assert abs(float(cols.float().mean()) - 23.5) <= 1 and abs(float(rows.float().mean()) - 7.5) <= 1
    assert 7 <= len(cols) <= 9 and 7 <= len(rows) <= 9
    assert float(img[1:].max()) < 0.1 and float(img[0, 24, 0]) < 0.1  # red only, background elsewhere


def test_the_placed_decoder_fits_images_of_one_object():
    torch.manual_seed(0)
    dec = PlacedDecoder((2, 4), image_size=32, width=16, patch=16)
    opt = torch.optim.Adam(dec.parameters(), lr=3e-3)
    labels = torch.cartesian_prod(torch.arange(2), torch.arange(4))
    images = _images(labels)
    with torch.no_grad():
        first = float(dec.loss(labels, images))
    for _ in range(40):
        opt.zero_grad()
        dec.loss(labels, images).backward()
        opt.step()
    with torch.no_grad():
        assert float(dec.loss(labels, images)) < first / 2  # 2.7 to 3.3x less in 40 steps, seeds 0 to 2


def test_the_decoder_kind_travels_with_the_checkpoint(tmp_path):
    from vsa_vision.checkpoint import export_model, load_model
    from vsa_vision.model import VSAModel

    schema = {"name": "toy", "image_size": 32, "attributes": [
        {"name": "colour", "values": ["red", "green"]}, {"name": "x", "values": ["a", "b", "c", "d"]}]}
    m = VSAModel(schema=schema, dim=64, width=8, features=16, decoder=16, decoder_kind="placed")
    assert isinstance(m.decoder, PlacedDecoder)
    export_model(m, tmp_path / "toy.safetensors")
    back = load_model(tmp_path / "toy.safetensors")
    assert isinstance(back.decoder, PlacedDecoder)
    labels = torch.tensor([[1, 2]])
    assert torch.equal(back.decoder.draw(labels), m.decoder.draw(labels))
    assert isinstance(VSAModel(schema=schema, dim=64, width=8, features=16, decoder=16).decoder, ImageDecoder)


def test_fit_decoder_trains_the_decoder_alone_with_the_encoder_frozen():
    from vsa_vision.model import VSAModel
    from vsa_vision.training import fit_decoder

    schema = {"name": "toy", "image_size": 32, "attributes": [
        {"name": "colour", "values": ["red", "green"]}, {"name": "x", "values": ["a", "b", "c", "d"]}]}
    torch.manual_seed(0)
    m = VSAModel(schema=schema, dim=64, width=8, features=16, decoder=16, decoder_kind="placed")
    labels = torch.cartesian_prod(torch.arange(2), torch.arange(4)).repeat(4, 1)
    images = (_images(labels) * 255).to(torch.uint8)
    encoder = {k: v.clone() for k, v in m.encoder.state_dict().items()}
    decoder = {k: v.clone() for k, v in m.decoder.state_dict().items()}
    batches = [(images[i:i + 8], labels[i:i + 8]) for i in range(0, 32, 8)]
    logged = []
    losses = fit_decoder(m, batches, minutes=0.05, log=logged.append, log_every=2)
    assert all(torch.equal(v, m.encoder.state_dict()[k]) for k, v in encoder.items())
    assert all(p.requires_grad for p in m.encoder.parameters())
    assert any(not torch.equal(v, m.decoder.state_dict()[k]) for k, v in decoder.items())
    assert len(losses) == len(logged) >= 1 and all(math.isfinite(v) for v in losses)
    with pytest.raises(ValueError, match="gave no batch"):
        fit_decoder(m, [], minutes=0.01)
    with pytest.raises(ValueError, match="decoder_minutes"):
        fit_decoder(m, batches, minutes=-1)
    # the recognition term joins after the share pixels_first of the time on the pixel loss alone
    calls = []
    read = m.encoder.forward_with_factors
    m.encoder.forward_with_factors = lambda x: calls.append(len(x)) or read(x)
    fit_decoder(m, batches, minutes=0.01, pixels_first=1.0, log=lambda s: None)
    assert calls == []
    fit_decoder(m, batches, minutes=0.01, pixels_first=0.0, log=lambda s: None)
    assert len(calls) >= 1 and calls[0] == 8
    with pytest.raises(ValueError, match="decoder_pixels_first: expected a share"):
        fit_decoder(m, batches, minutes=0.01, pixels_first=1.5)
    m.decoder = None
    with pytest.raises(ValueError, match="no learned decoder"):
        fit_decoder(m, batches, minutes=0.01)
